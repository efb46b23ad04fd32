"""WAL sender: streams a primary's WAL to one standby (like a walsender).

The rule: **a standby never holds more than ``SHIP_AHEAD`` bytes its primary
has not flushed**. The sender reads up to the flush LSN, except that a lone
synchronous commit lets it read up to that commit's record first
(``engine.ship_ahead_lsn``, capped at flush LSN + ``SHIP_AHEAD``), so the
primary's fdatasync overlaps the standby's. The chunks are byte-exact copies
of the primary's log. A primary that crashed may have lost such a tail; it
then writes a SKIP record over those LSNs (``Storage.skip_lost_tail``), and a
standby whose WAL ends inside that SKIP record is refused with reason
MUST_REWIND and the SKIP record's start (trailing metadata ``REWIND_LSN_KEY``): it
rewinds to there and asks again. A start inside any other record is refused
without a rewind (corrupt WAL here, or a different history).

One ``WalSender`` per ``WalStream.Stream`` call, on the engine's event loop
(``aio.py``). ``messages()`` is the async generator the servicer returns: it
sends chunks the moment the WAL flush LSN moves (a WAL flush listener wakes
it, no polling), and a keepalive when idle. A reader task consumes the
standby's ``Feedback`` and pushes it into the slot, the sync-rep waiters and
the lag tracker at once; the commits it releases wake on the same loop.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from walrus_ha.common.errors import CorruptWal, EngineError, WalRemoved
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import StandbyInfo
from walrus_ha.node.engine.embedded.aio import LoopSignal
from walrus_ha.node.engine.embedded.syncrep import StandbyPosition, SyncRep
from walrus_ha.node.engine.embedded.wal import SHIP_AHEAD
from walrus_ha.protos import walstream_pb2

if TYPE_CHECKING:
    from walrus_ha.node.engine.embedded.slots import Slot, SlotStore
    from walrus_ha.node.engine.embedded.storage import Storage
    from walrus_ha.node.engine.embedded.timeline import TimelineHistory

log = logging.getLogger(__name__)

MAX_CHUNK = 512 * 1024
# Words for people in a refusal when WAL cannot help the standby ...
NEEDS_RECLONE_MARK = "needs a re-clone"
# ... and when it must drop the tail a crashed primary lost. The receiver
# decides by the reason code (NEEDS_RECLONE / MUST_REWIND, common.rpcerrors),
# never by these words; the exact LSN travels in the trailing metadata key
# REWIND_LSN_KEY.
REWIND_MARK = "rewind its unconfirmed tail"
REWIND_LSN_KEY = "walrus-rewind-lsn"
KEEPALIVE_S = 1.0
_LAG_SAMPLES = 4096


@dataclass
class _Lag:
    """Time between WAL being flushed locally and the standby confirming it."""
    write_s: float = 0.0
    flush_s: float = 0.0
    replay_s: float = 0.0


class LagTracker:
    """Samples of (lsn, local time it became sendable); confirmations turn them
    into write/flush/replay lags in seconds, like pg_stat_replication."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        # one queue of (lsn, time sent) per kind: write, flush, replay
        self._queues = [collections.deque(maxlen=_LAG_SAMPLES) for _ in range(3)]
        self.lag = _Lag()

    def sent(self, lsn: int) -> None:
        now = self._clock()
        for q in self._queues:
            q.append((lsn, now))

    def confirm(self, write: int, flush: int, replay: int) -> None:
        now = self._clock()
        results = []
        for q, lsn in zip(self._queues, (write, flush, replay)):
            last = None
            while q and q[0][0] <= lsn:
                last = q.popleft()
            results.append(None if last is None else now - last[1])
        if results[0] is not None:
            self.lag.write_s = results[0]
        if results[1] is not None:
            self.lag.flush_s = results[1]
        if results[2] is not None:
            self.lag.replay_s = results[2]


class SenderRefused(Exception):
    """The standby may not stream (stale term, lost slot, removed WAL, ...).
    ``needs_reclone`` tells the standby it cannot catch up from WAL."""

    def __init__(self, message: str, needs_reclone: bool = False, rewind_to: int | None = None):
        super().__init__(message)
        self.needs_reclone = needs_reclone
        self.rewind_to = rewind_to


@dataclass(frozen=True)
class StartRequest:
    """A standby's ``StartReplication``."""
    name: str
    start_lsn: int
    timeline: int
    term: int


@dataclass(frozen=True)
class StartPoint:
    """Where a standby's start LSN falls in this node's WAL."""
    record_start: bool               # a verified record starts there (or it is the WAL end)
    skip_start: int | None = None    # else: start of the SKIP record it lies inside, if any


def check_start(req: StartRequest, term: int, write_lsn: int, oldest_lsn: int,
                slot: Slot | None, history: TimelineHistory,
                locate: Callable[[], StartPoint] = lambda: StartPoint(True)) -> None:
    """May this standby stream from ``req.start_lsn``? Pure but for
    ``locate`` (where does it fall in this WAL?), asked last; raises
    ``SenderRefused`` (``needs_reclone`` when WAL cannot help it,
    ``rewind_to`` when it holds WAL this node shipped ahead and lost) if
    not."""
    name = req.name
    if req.term > term:
        raise SenderRefused(f"stale term: this primary has term {term}, the standby {name} has seen term {req.term}")
    if slot is not None and slot.lost:
        raise SenderRefused(f"replication slot {name!r} is lost (it exceeded max_slot_wal_keep_size)",
                            needs_reclone=True)
    if req.start_lsn > write_lsn:
        raise SenderRefused(f"standby {name} asks for {format_lsn(req.start_lsn)}, past this primary's "
                            f"WAL end {format_lsn(write_lsn)}", needs_reclone=True)
    if req.start_lsn < oldest_lsn:
        raise SenderRefused(f"requested WAL at {format_lsn(req.start_lsn)} has been removed (oldest "
                            f"is {format_lsn(oldest_lsn)})", needs_reclone=True)
    if req.timeline > history.timeline:
        raise SenderRefused(f"standby {name} is on timeline {req.timeline}, newer than this primary's "
                            f"{history.timeline}: this primary is stale")
    if req.timeline != history.timeline:
        try:
            fork = history.end_of(req.timeline)
        except KeyError:
            raise SenderRefused(f"standby timeline {req.timeline} is not in this primary's history "
                                f"(timeline {history.timeline})", needs_reclone=True) from None
        if req.start_lsn > fork:
            raise SenderRefused(f"standby {name} diverged: its WAL ends at {format_lsn(req.start_lsn)}, "
                                f"past the fork of timeline {req.timeline} at {format_lsn(fork)}; rewind it")
    point = locate()
    if point.record_start:
        return
    if point.skip_start is not None:
        raise SenderRefused(f"standby {name}'s WAL ends at {format_lsn(req.start_lsn)}, inside the SKIP record "
                            f"this node wrote after a crash: it holds WAL shipped ahead and lost here; it must "
                            f"{REWIND_MARK} to {format_lsn(point.skip_start)}", rewind_to=point.skip_start)
    raise SenderRefused(f"standby {name}'s WAL ends at {format_lsn(req.start_lsn)}, which is not the start of a "
                        f"valid record here, nor inside a SKIP record: corrupt WAL here, or a different "
                        f"history; not streaming")


class SenderHost(Protocol):
    """What a ``WalSender`` needs of its primary (``EmbeddedEngine`` is one).
    It reads these; it changes nothing of the host but through ``syncrep``
    (standby positions release commits) and ``slots`` (advance the slot)."""

    config: EmbeddedConfig          # wal_sender_timeout_s
    storage: Storage | None         # the WAL to ship; None once the engine stopped
    syncrep: SyncRep
    slots: SlotStore | None
    ship_ahead_lsn: int             # a lone commit's record end: ship up to it before the flush

    @property
    def term(self) -> int:
        """The primary's term (stamped on every chunk and keepalive)."""

    @property
    def timeline(self) -> int:
        """The primary's timeline."""

    @property
    def is_draining(self) -> bool:
        """A demotion waits for the standbys to confirm the final WAL."""

    def is_serving_wal(self) -> bool:
        """False: the stream ends (no longer primary, not draining, or stopping)."""


class WalSender:
    """Streams WAL from ``start_lsn`` to standby ``name`` until stopped."""

    def __init__(self, engine: SenderHost, name: str, start_lsn: int):
        self.engine = engine
        self.name = name
        self.sent_lsn = start_lsn
        self.write_lsn = self.flush_lsn = self.apply_lsn = 0
        self.lag = LagTracker()
        self.chunks_sent = 0
        self.feedback_received = 0
        self.last_feedback_at = time.monotonic()
        self.bad_feedback = ""      # why the standby's feedback was refused (the stream ends)
        self._stop = threading.Event()
        self._confirmed = threading.Condition()
        self._wake: LoopSignal | None = None      # set while messages() runs

    def stop(self) -> None:
        """Ask the stream to end (it wakes from its WAL wait at once)."""
        self._stop.set()
        wake = self._wake
        if wake is not None:
            wake.set()
        storage = self.engine.storage
        if storage is not None:
            storage.wal.wake_all()
        with self._confirmed:
            self._confirmed.notify_all()

    def poke(self) -> None:
        """Look for WAL to ship now (a lone commit raised ``ship_ahead_lsn``)."""
        wake = self._wake
        if wake is not None:
            wake.set()

    def wait_flushed(self, lsn: int, deadline: float) -> bool:
        """Block until the standby confirmed flushing ``lsn`` (True), or the
        stream ended / monotonic ``deadline`` passed (False)."""
        with self._confirmed:
            while self.flush_lsn < lsn and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._confirmed.wait(left)
            return self.flush_lsn >= lsn

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def read_feedback(self, request_iterator: AsyncIterator[walstream_pb2.StandbyMessage]) -> None:
        """Consume feedback until the standby hangs up (a task on the loop)."""
        try:
            async for msg in request_iterator:
                if self._stop.is_set():
                    break
                if msg.WhichOneof("msg") == "feedback":
                    self.on_feedback(msg.feedback)
                    # let the commits this released answer before the
                    # bookkeeping and the next read
                    await asyncio.sleep(0)
                    self.after_feedback()
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # the RPC ended (cancelled, broken): just stop
            log_event(log, "walsender_feedback_end", logging.DEBUG, standby=self.name, error=type(exc).__name__)
        finally:
            self.stop()

    def on_feedback(self, fb: walstream_pb2.Feedback) -> None:
        """Take in a standby's positions and release the commits they
        satisfy; ``after_feedback`` does the rest (it may run a turn later).
        A position past what was sent cannot be true: it is refused (the
        stream ends) before it can release a commit or move the slot."""
        if max(fb.write_lsn, fb.flush_lsn, fb.apply_lsn) > self.sent_lsn:
            self.bad_feedback = (f"standby {self.name} reported write {format_lsn(fb.write_lsn)} / flush "
                                 f"{format_lsn(fb.flush_lsn)} / apply {format_lsn(fb.apply_lsn)}, past the WAL "
                                 f"sent to it ({format_lsn(self.sent_lsn)}); feedback refused")
            log_event(log, "walsender_bad_feedback", logging.WARNING, standby=self.name, reason=self.bad_feedback)
            self.stop()
            return
        self.feedback_received += 1
        self.last_feedback_at = time.monotonic()
        self.write_lsn = max(self.write_lsn, fb.write_lsn)
        self.flush_lsn = max(self.flush_lsn, fb.flush_lsn)
        self.apply_lsn = max(self.apply_lsn, fb.apply_lsn)
        self.engine.syncrep.update(StandbyPosition(self.name, self.write_lsn, self.flush_lsn, self.apply_lsn))

    def after_feedback(self) -> None:
        """Slot, lag and drain bookkeeping for the positions last received."""
        # never past our own flush: WAL shipped ahead may still be lost here
        self.engine.slots.advance(self.name, min(self.flush_lsn, self.engine.storage.wal.flush_lsn))
        self.lag.confirm(self.write_lsn, self.flush_lsn, self.apply_lsn)
        if self.engine.is_draining:
            with self._confirmed:
                self._confirmed.notify_all()

    async def messages(self) -> AsyncIterator[walstream_pb2.WalMessage]:
        """Chunks as soon as WAL is flushed (or shipped ahead); keepalives when idle."""
        wal = self.engine.storage.wal
        wake = self._wake = LoopSignal()
        if self._stop.is_set():
            wake.set()

        def on_flush(_lsn: int) -> None:
            wake.set()
        wal.add_flush_listener(on_flush)
        try:
            last_send = 0.0      # a keepalive at once tells the standby our term and position
            while True:
                wake.clear()     # before the checks and the read: a stop or flush after them wakes us
                if self._stop.is_set() or not self.engine.is_serving_wal():
                    break
                flush = wal.flush_lsn
                limit = max(flush, min(self.engine.ship_ahead_lsn, flush + SHIP_AHEAD))
                try:
                    data = wal.read_raw(self.sent_lsn, MAX_CHUNK, limit)
                except CorruptWal as exc:
                    raise SenderRefused(f"cannot send WAL at {format_lsn(self.sent_lsn)}: {exc}") from exc
                except WalRemoved as exc:
                    raise SenderRefused(f"requested WAL was removed: {exc}; the standby needs a re-clone",
                                        needs_reclone=True) from exc
                except EngineError as exc:   # e.g. our WAL broke on a failed fsync: not the standby's fault
                    raise SenderRefused(f"cannot read WAL at {format_lsn(self.sent_lsn)}: {exc}") from exc
                if data:
                    start = self.sent_lsn
                    self.sent_lsn = start + len(data)
                    self.lag.sent(self.sent_lsn)
                    self.chunks_sent += 1
                    last_send = time.monotonic()
                    yield walstream_pb2.WalMessage(chunk=walstream_pb2.WalChunk(
                        start_lsn=start, data=data, primary_flush_lsn=wal.flush_lsn,
                        timeline=self.engine.timeline, term=self.engine.term))
                    continue
                now = time.monotonic()
                if now - self.last_feedback_at > self.engine.config.wal_sender_timeout_s:
                    log_event(log, "walsender_timeout", logging.WARNING, standby=self.name,
                              silent_s=round(now - self.last_feedback_at, 2))
                    return      # like wal_sender_timeout: drop a standby that stopped answering
                idle = now - last_send
                if idle >= KEEPALIVE_S:
                    last_send = time.monotonic()
                    yield walstream_pb2.WalMessage(keepalive=walstream_pb2.Keepalive(
                        primary_write_lsn=wal.write_lsn, primary_flush_lsn=wal.flush_lsn,
                        timeline=self.engine.timeline, term=self.engine.term, primary_time=time.time()))
                    continue
                await wake.wait(KEEPALIVE_S - idle)
        finally:
            wal.remove_flush_listener(on_flush)

    def info(self, primary_flush_lsn: int, sync_state: str) -> StandbyInfo:
        """A pg_stat_replication row for ``EngineStatus.standbys``."""
        lag = self.lag.lag
        caught_up = self.apply_lsn >= primary_flush_lsn
        return StandbyInfo(
            name=self.name, sent_lsn=self.sent_lsn, write_lsn=self.write_lsn,
            flush_lsn=self.flush_lsn, replay_lsn=self.apply_lsn,
            send_lag_bytes=max(0, primary_flush_lsn - self.sent_lsn),
            flush_lag_bytes=max(0, primary_flush_lsn - self.flush_lsn),
            replay_lag_bytes=max(0, primary_flush_lsn - self.apply_lsn),
            write_lag_s=0.0 if caught_up else lag.write_s,
            flush_lag_s=0.0 if caught_up else lag.flush_s,
            replay_lag_s=0.0 if caught_up else lag.replay_s,
            sync_state=sync_state)
