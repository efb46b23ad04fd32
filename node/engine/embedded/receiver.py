"""WAL receiver and replayer of a standby (like walreceiver + startup process).

The rule: **feedback never claims more than is true**: ``write`` after
``append_raw`` returned, ``flush`` after ``Wal.flush`` returned, ``apply``
after the state reflects it. A synchronous commit on the primary is released
by this feedback, so it is sent the moment each step finishes.

``WalReceiver`` runs one thread: connect to the upstream's ``WalStream``,
check the timeline history (a standby whose WAL went past the fork point
rewinds itself, or reports ``needs_reclone`` when it cannot; so does one
refused with reason MUST_REWIND, to the LSN the upstream names), then run the
stream as a coroutine on the engine's event loop (``aio.py``; the thread
waits for it): ``StartReplication`` from its own WAL end, then verify + write
+ fsync every chunk and report. Feedback is written by one writer task that
always sends the current positions (several requests between two writes
coalesce into one message). A broken stream is retried with jittered exponential backoff
(asking again from its own WAL end); a stream from an older term than the
highest seen is refused; removed WAL / a lost slot sets ``needs_reclone``.
``Replayer`` is a second thread that applies flushed WAL to the state in order
(catch-up and large chunks; small chunks on a caught-up standby are applied by
the receiver right after their fsync, so one feedback reports all three).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Protocol

import grpc

from walrus_ha.common import grpcutil, rpcerrors
from walrus_ha.common.errors import CorruptWal, EngineError, MustRewind, NeedsReclone, StaleTerm, WalRemoved
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.embedded.aio import LoopSignal, LoopThread
from walrus_ha.node.engine.embedded.sender import REWIND_LSN_KEY
from walrus_ha.node.engine.embedded.timeline import HistoryEntry, TimelineHistory, find_divergence
from walrus_ha.node.engine.embedded.wal import SHIP_AHEAD
from walrus_ha.protos import walstream_pb2, walstream_pb2_grpc

if TYPE_CHECKING:
    from walrus_ha.node.engine.embedded.storage import Storage

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
INLINE_APPLY_MAX = 64 * 1024   # chunks up to this size are applied by the receiver itself
HISTORY_TIMEOUT_S = 5.0        # the session's TimelineHistory call (stop() cancels it sooner)


class StandbyHost(Protocol):
    """What ``WalReceiver`` and ``Replayer`` need of their standby
    (``EmbeddedEngine`` is one). They write WAL and replay it through
    ``storage``; everything else they change goes through the methods."""

    name: str                        # our standby (and slot) name on the upstream
    storage: Storage | None
    receiver: WalReceiver | None     # the replayer asks it to send feedback

    @property
    def term(self) -> int:
        """The highest term seen (persisted)."""

    @property
    def timeline(self) -> int:
        """Our timeline."""

    @property
    def replay_lsn(self) -> int:
        """How far the state has applied the WAL."""

    @property
    def event_loop(self) -> LoopThread | None:
        """The loop the stream runs on (None when not serving)."""

    def replay_to(self, lsn: int) -> int:
        """Apply flushed WAL up to ``lsn``; returns the new replay LSN."""

    def observe_term(self, term: int) -> None:
        """Persist a newer term seen on the stream."""

    def mark_needs_reclone(self, reason: str) -> None:
        """WAL cannot help this standby any more: report ``needs_reclone``."""

    def rewind(self, fork_lsn: int, upstream: str = "") -> None:
        """Drop local WAL at/after ``fork_lsn``; NeedsReclone (an EngineError) if impossible."""


class Diverged(EngineError):
    """The standby's WAL went past the point where its timeline forked."""

    def __init__(self, message: str, fork_lsn: int):
        super().__init__(message)
        self.fork_lsn = fork_lsn


def history_from_reply(reply: walstream_pb2.TimelineHistoryReply) -> TimelineHistory:
    return TimelineHistory(reply.current_timeline or 1,
                           tuple(HistoryEntry(e.timeline, e.switch_lsn, e.reason) for e in reply.entries))


def divergence_with(storage: Storage, upstream_history: TimelineHistory) -> int | None:
    """The LSN to rewind to before streaming from an upstream with this
    history, or None when our WAL has not diverged. Replays local WAL first so
    the local history is current."""
    storage.replay_up_to(storage.wal.write_lsn)
    local = storage.history()
    d = find_divergence(local, storage.wal.write_lsn, upstream_history)
    if upstream_history.timeline < local.timeline:
        raise NeedsReclone(f"upstream is on timeline {upstream_history.timeline}, older than ours "
                           f"({local.timeline}); it is not a descendant of this node")
    return d.fork_lsn if d.diverged else None


def check_divergence(storage: Storage, upstream: Upstream, timeout: float = 5.0) -> int | None:
    """Fetch ``upstream``'s timeline history and compare (see ``divergence_with``).
    Raises grpc.RpcError when the upstream cannot be reached."""
    with grpcutil.channel(upstream.address) as ch:
        reply = walstream_pb2_grpc.WalStreamStub(ch).TimelineHistory(
            walstream_pb2.TimelineHistoryRequest(), timeout=timeout)
    return divergence_with(storage, history_from_reply(reply))


def fetch_base_backup(upstream: Upstream, name: str, deadline_s: float = 60.0
                      ) -> tuple[bytes, TimelineHistory, int]:
    """(state snapshot, timeline history, term) from ``upstream``'s BaseBackup,
    retrying an unreachable upstream for up to ``deadline_s``."""
    def once():
        with grpcutil.channel(upstream.address) as ch:
            stub = walstream_pb2_grpc.WalStreamStub(ch)
            hist = history_from_reply(stub.TimelineHistory(walstream_pb2.TimelineHistoryRequest(), timeout=10))
            parts, term, tli = [], 0, 0
            for chunk in stub.BaseBackup(walstream_pb2.BaseBackupRequest(standby_name=name), timeout=deadline_s):
                parts.append(chunk.data)
                term, tli = chunk.term, chunk.timeline
                if chunk.last:
                    break
            else:
                raise EngineError(f"base backup from {upstream} ended early")
            if tli != hist.timeline:
                raise EngineError(f"{upstream} changed timeline during the base backup; try again")
            return b"".join(parts), hist, term
    try:
        return grpcutil.call_with_retry(once, deadline_s)
    except grpc.RpcError as exc:
        raise EngineError(f"base backup from {upstream} failed: {exc.details() or exc.code()}") from None


class WalReceiver:
    """Streams from ``upstream`` into the local WAL until ``stop()``."""

    def __init__(self, engine: StandbyHost, upstream: Upstream):
        self.engine = engine
        self.upstream = upstream
        self.streaming = False
        self.receive_lsn = engine.storage.wal.write_lsn
        self.primary_flush_lsn = 0
        self.last_message_at = 0.0
        self.error = ""
        self._stop = threading.Event()
        self._stream: concurrent.futures.Future | None = None   # the coroutine on the loop
        self._call: grpc.Future | None = None                     # a blocking unary call in flight
        self._fb_wake: LoopSignal | None = None                   # set: a feedback is due
        self._thread = threading.Thread(target=self._run, name=f"walreceiver-{upstream.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # Cancel what the thread waits on: a call to an upstream that went
        # silent (partitioned) would otherwise hold promotion until its deadline.
        for pending in (self._stream, self._call):
            if pending is not None:
                pending.cancel()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)
        self.streaming = False

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stop.is_set():
            try:
                self._session()
                backoff = BACKOFF_MIN_S
            except Diverged as exc:
                if self._rewind(exc.fork_lsn):
                    continue
                return
            except NeedsReclone as exc:
                self.engine.mark_needs_reclone(str(exc))
                self._give_up(str(exc))
                return
            except StaleTerm as exc:
                self.error = str(exc)
                log_event(log, "walreceiver_refused", logging.WARNING, upstream=self.upstream, reason=exc)
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    break
                detail = exc.details() or str(exc.code())
                refusal = rpcerrors.error_from_rpc(exc, str(self.upstream))    # by its reason code
                if isinstance(refusal, (NeedsReclone, WalRemoved)):
                    self.engine.mark_needs_reclone(detail)
                    self._give_up(detail)
                    return
                self.error = f"{exc.code().name}: {detail}"
                if isinstance(refusal, MustRewind):
                    if not self._rewind_tail(exc, detail):
                        return
            except (EngineError, OSError) as exc:
                self.error = str(exc)
                log_event(log, "walreceiver_error", logging.WARNING, upstream=self.upstream, error=exc)
            except (concurrent.futures.CancelledError, grpc.FutureCancelledError):
                if self._stop.is_set():
                    break
                self.error = "the stream was cancelled"
            except Exception as exc:    # a bug must not end replication: log it and retry
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("walreceiver session failed")
            finally:
                self.streaming = False
                self._stream = None
            if self._stop.wait(backoff * (0.5 + random.random())):
                break
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _rewind_tail(self, exc: grpc.RpcError, detail: str) -> bool:
        """The upstream crashed and lost WAL it had shipped ahead to us: drop
        our copy from the LSN it names (the start of its SKIP record). Only
        the last SHIP_AHEAD bytes can be in that state (all below was
        durable on the node that sent it), so a deeper target is refused
        and the session just retried. False when the rewind failed (given up)."""
        wal = self.engine.storage.wal
        meta = dict(exc.trailing_metadata() or ())
        try:
            target = int(meta.get(REWIND_LSN_KEY, ""))
        except ValueError:
            target = -1
        if not wal.write_lsn - SHIP_AHEAD <= target < wal.write_lsn:
            log_event(log, "walreceiver_rewind_refused", logging.ERROR, upstream=self.upstream,
                      target=target, write=format_lsn(wal.write_lsn), reason=detail)
            return True
        log_event(log, "walreceiver_rewind_tail", logging.WARNING, upstream=self.upstream,
                  to=format_lsn(target), reason=detail)
        return self._rewind(target)

    def _rewind(self, lsn: int) -> bool:
        """Rewind to ``lsn`` before the next session; False (and given up,
        ``needs_reclone`` set) when that is impossible."""
        try:
            self.engine.rewind(lsn)
            return True
        except EngineError as exc:
            self.engine.mark_needs_reclone(f"diverged from {self.upstream} and cannot rewind: {exc}")
            self._give_up(str(exc))
            return False

    def _give_up(self, reason: str) -> None:
        self.error = reason
        self.streaming = False
        self._stop.set()
        log_event(log, "walreceiver_stopped", logging.ERROR, upstream=self.upstream, reason=reason)

    def _session(self) -> None:
        engine = self.engine
        wal = engine.storage.wal
        with grpcutil.channel(self.upstream.address) as ch:
            stub = walstream_pb2_grpc.WalStreamStub(ch)
            self._call = call = stub.TimelineHistory.future(walstream_pb2.TimelineHistoryRequest(),
                                                            timeout=HISTORY_TIMEOUT_S)
            try:
                if self._stop.is_set():
                    call.cancel()
                hist = history_from_reply(call.result())
            finally:
                self._call = None
        wal.flush()
        fork = divergence_with(engine.storage, hist)
        if fork is not None:
            raise Diverged(f"our WAL ends at {format_lsn(wal.write_lsn)}, past the fork of our "
                           f"timeline at {format_lsn(fork)}", fork)
        loop = engine.event_loop
        if loop is None:
            raise EngineError("the engine is not serving (no event loop)")
        self._stream = fut = asyncio.run_coroutine_threadsafe(self._stream_wal(), loop.loop)
        if self._stop.is_set():
            fut.cancel()
        fut.result()

    async def _stream_wal(self) -> None:
        """One replication session on the engine loop: start from our WAL
        end, then write + fsync + report every chunk until the stream ends."""
        engine = self.engine
        wal = engine.storage.wal
        self._fb_wake = wake = LoopSignal()
        async with grpcutil.aio_channel(self.upstream.address) as ch:
            call = walstream_pb2_grpc.WalStreamStub(ch).Stream()
            await call.write(walstream_pb2.StandbyMessage(start=walstream_pb2.StartReplication(
                standby_name=engine.name, start_lsn=wal.write_lsn, timeline=engine.timeline,
                term=engine.term)))
            writer = asyncio.get_running_loop().create_task(self._feedback_writer(call, wake))
            try:
                while not self._stop.is_set():
                    msg = await call.read()
                    if msg is grpc.aio.EOF:   # ended OK (read() raises for a failed stream)
                        return
                    self.last_message_at = time.monotonic()
                    if msg.WhichOneof("msg") == "chunk":
                        self._on_chunk(msg.chunk)
                        # let the feedback writer send before we set up the
                        # next read: a sync commit on the primary waits for it
                        await asyncio.sleep(0)
                    else:
                        self._on_keepalive(msg.keepalive)
                    if writer.done():
                        writer.result()      # a failed feedback write ends the session
            finally:
                writer.cancel()
                call.cancel()
                self._fb_wake = None

    async def _feedback_writer(self, call, wake: LoopSignal) -> None:
        """Write the current positions each time a feedback is due."""
        engine = self.engine
        while True:
            await wake.wait(None)
            wake.clear()
            wal = engine.storage.wal
            await call.write(walstream_pb2.StandbyMessage(feedback=walstream_pb2.Feedback(
                write_lsn=wal.write_lsn, flush_lsn=wal.flush_lsn, apply_lsn=engine.replay_lsn,
                sent_at=time.time())))

    def _check_term(self, term: int) -> None:
        if term < self.engine.term:
            raise StaleTerm(f"stale term: upstream {self.upstream} streams term {term}, "
                            f"we have seen term {self.engine.term}")
        if term > self.engine.term:
            self.engine.observe_term(term)

    def _on_chunk(self, chunk: walstream_pb2.WalChunk) -> None:
        """Write + fsync the chunk and report. A small chunk that continues
        what is already applied is also applied here, so one feedback carries
        write, flush and apply (fewer stream messages per commit); a large one
        reports its write first and leaves replay to the ``Replayer``."""
        self._check_term(chunk.term)
        engine = self.engine
        wal = engine.storage.wal
        try:
            end = wal.append_raw(chunk.start_lsn, chunk.data)
        except CorruptWal as exc:
            raise EngineError(f"bad WAL chunk from {self.upstream}: {exc}") from exc
        self.receive_lsn = end
        self.primary_flush_lsn = max(self.primary_flush_lsn, chunk.primary_flush_lsn, end)
        self.streaming = True
        self.error = ""
        small = len(chunk.data) <= INLINE_APPLY_MAX
        wal.flush(end)
        if small and engine.replay_lsn >= chunk.start_lsn:
            engine.replay_to(end)
        self.send_feedback()

    def _on_keepalive(self, ka: walstream_pb2.Keepalive) -> None:
        self._check_term(ka.term)
        self.primary_flush_lsn = max(self.primary_flush_lsn, ka.primary_flush_lsn)
        self.streaming = True
        self.error = ""
        self.send_feedback()

    def send_feedback(self) -> None:
        """Ask for a feedback with the current positions (from any thread)."""
        wake = self._fb_wake
        if wake is not None:
            wake.set()

    def lag(self) -> tuple[int, float]:
        """(bytes, seconds) the standby's state is behind its primary."""
        behind = max(0, self.primary_flush_lsn - self.engine.replay_lsn)
        if behind == 0:
            return 0, 0.0
        since = time.monotonic() - self.last_message_at if self.last_message_at else 0.0
        return behind, since


class Replayer:
    """Applies flushed WAL to the state in order; reports each step."""

    def __init__(self, engine: StandbyHost):
        self.engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replayer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.engine.storage.wal.wake_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        engine = self.engine
        wal = engine.storage.wal
        while not self._stop.is_set():
            applied = engine.replay_lsn
            if wal.flush_lsn <= applied:
                wal.wait_for_flush(applied, 0.2)
                continue
            try:
                engine.replay_to(wal.flush_lsn)
            except EngineError as exc:
                log_event(log, "replay_failed", logging.ERROR, error=exc)
                self._stop.wait(1.0)
                continue
            receiver = engine.receiver
            if receiver is not None:
                receiver.send_feedback()
