"""The embedded engine's event loop: one asyncio loop in one thread.

The engine serves ``Store`` and ``WalStream`` from a ``grpc.aio`` server on
this loop, so a commit costs no thread hand-off of its own: every stream's
messages, every commit waiting for its level and every WAL sender run as
coroutines on one thread. Other threads (the WAL writer that fsyncs, the
checkpointer, a standby's receiver) reach the loop through ``LoopSignal``:

* ``LoopSignal.set()`` may be called from any thread. Off the loop it posts
  through the loop's ``_Poster``: many ``set()`` calls between two loop turns
  (say, 32 commits released by one standby feedback) cost one wake-up of the
  loop (one ``call_soon_threadsafe``), not one each. On the loop thread it
  fires at once.
* ``await LoopSignal.wait(timeout)`` on the loop: True once set, False after
  ``timeout`` seconds. It stays set until ``clear()``.

``LoopThread`` owns the loop: ``run(coro, timeout)`` runs a coroutine there
from another thread and returns its result; ``stop()`` ends the loop and
joins the thread.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class _Poster:
    """Batches cross-thread ``LoopSignal.set()`` calls into one loop wake-up."""
    __slots__ = ("_loop", "_lock", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[LoopSignal] = []

    def post(self, sig: LoopSignal) -> None:
        with self._lock:
            self._pending.append(sig)
            first = len(self._pending) == 1
        if first:
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:        # the loop is closed: nobody waits any more
                pass

    def _drain(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
        for sig in items:
            sig._fire()


def _poster_for(loop: asyncio.AbstractEventLoop) -> _Poster:
    """The loop's poster, kept on the loop itself (so it goes with the loop)."""
    p = getattr(loop, "_walrus_poster", None)
    if p is None:
        with _POSTER_LOCK:
            p = getattr(loop, "_walrus_poster", None)
            if p is None:
                p = loop._walrus_poster = _Poster(loop)
    return p


_POSTER_LOCK = threading.Lock()


class LoopSignal:
    """A resettable flag, set from any thread, awaited on one event loop.

    Same interface as ``syncrep._Signal`` (``set``/``is_set``/``clear``) plus
    an awaitable ``wait``. Only the owner (a coroutine on ``loop``) calls
    ``wait`` and ``clear``.
    """
    __slots__ = ("_loop", "_loop_tid", "_poster", "_set", "_fut")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._loop_tid = threading.get_ident() if loop is None else getattr(loop, "_walrus_tid", None)
        self._poster = _poster_for(self._loop)
        self._set = False
        self._fut: asyncio.Future | None = None

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        if threading.get_ident() == self._loop_tid:
            self._fire()
        else:
            self._poster.post(self)

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        self._set = False

    def _fire(self) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(True)

    async def wait(self, timeout: float | None) -> bool:
        if self._set:
            return True
        if timeout is not None and timeout <= 0:
            return False
        loop = self._loop
        fut = self._fut = loop.create_future()
        handle = loop.call_later(timeout, _expire, fut) if timeout is not None else None
        try:
            return await fut
        finally:
            self._fut = None
            if handle is not None:
                handle.cancel()


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


class LoopThread:
    """An asyncio event loop running in its own daemon thread."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop._walrus_tid = threading.get_ident()   # LoopSignal: "am I on the loop?"
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    @property
    def on_loop(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop from another thread; its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (pending tasks are cancelled) and join the thread.
        Not from the loop thread itself."""
        if self.on_loop:
            raise RuntimeError("LoopThread.stop() called from its own loop")
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("event loop thread %s did not stop within %.1f s", self._thread.name, timeout)
