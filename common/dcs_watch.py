"""A prefix watch that survives etcd restarts (part of the DCS layer, dcs.py).

The one rule: a reader is never left believing it saw everything when it may
not have. Each time the watch stream is (re-)established after a break, the
callback is called once so that the reader re-reads the whole view; every
batch of events also calls it. The callback gets no arguments.
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Protocol

import grpc
from etcd3 import etcdrpc

from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)


class Endpoints(Protocol):
    """What the watch needs of ``dcs.Dcs``: an etcd client for endpoint ``i``
    (round robin); raises once the Dcs is closed."""

    def endpoint(self, index: int): ...


class PrefixWatch:
    """One watch on ``[key, range_end)`` run by a daemon thread."""

    def __init__(self, dcs: Endpoints, key: bytes, range_end: bytes, callback: Callable[[], None]):
        self._dcs = dcs
        self._key, self._range_end = key, range_end
        self._callback = callback
        self._stop = threading.Event()
        self._established = threading.Event()
        self._returned = False          # start() has returned to the caller
        self._lock = threading.Lock()
        self._call = None
        self._endpoint_index = 0
        self.reconnects = 0             # times the stream was re-established (for tests/metrics)
        self._thread = threading.Thread(target=self._run, name=f"dcs-watch-{key.decode(errors='replace')}",
                                        daemon=True)

    def start(self, wait_s: float) -> None:
        """Start; wait up to ``wait_s`` for the first stream to be established.

        If it is not established by then the thread keeps trying and calls
        the callback once it is (so nothing is missed either way).
        """
        self._thread.start()
        self._established.wait(wait_s)
        with self._lock:
            self._returned = True

    def cancel(self) -> None:
        """Stop the watch and its thread. Idempotent."""
        self._stop.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _requests(self):
        create = etcdrpc.WatchCreateRequest(key=self._key, range_end=self._range_end)
        yield etcdrpc.WatchRequest(create_request=create)
        self._stop.wait()   # keep the request side open until cancelled

    def _run(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                ep = self._dcs.endpoint(self._endpoint_index)
            except Exception:  # Dcs closed
                return
            try:
                call = ep.watch.Watch(self._requests())
                with self._lock:
                    self._call = call
                if self._stop.is_set():
                    call.cancel()
                for resp in call:
                    if resp.created:
                        failures = 0
                        self._on_established(first)
                        first = False
                    elif resp.canceled:
                        break
                    elif resp.events:
                        self._notify()
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                log_event(log, "watch broken", logging.WARNING if failures == 0 else logging.DEBUG,
                          endpoint=ep.address, code=exc.code().name, failures=failures)
            if self._stop.is_set():
                return
            failures += 1
            self._endpoint_index += 1
            # Jittered exponential backoff, capped at 1 s, interruptible by cancel().
            self._stop.wait(random.uniform(0, min(1.0, 0.05 * 2 ** min(failures, 6))))

    def _on_established(self, first: bool) -> None:
        with self._lock:
            caller_knows = first and not self._returned
        self._established.set()
        if not first:
            self.reconnects += 1
            log_event(log, "watch re-established", reconnects=self.reconnects)
        if not caller_knows:
            self._notify()

    def _notify(self) -> None:
        try:
            self._callback()
        except Exception:
            log.exception("watch callback failed")
