"""The embedded engine's write path: ``write_async`` / ``write``, ``read``
and the WAL writer thread, a mixin of ``EmbeddedEngine`` (like ``transitions``).

The rule: **a write is acknowledged only after its commit level is met and
``SyncRep.check_ack`` passed (not fenced, lease deadline not passed)**, and a
node writes WAL only while it is the primary (role check and append happen
under one gate, so a demotion never interleaves with a write).

A commit that is alone fsyncs itself; on the loop it first yields a few turns
to make sure it is. Otherwise the WAL writer fsyncs for the group (after
``commit_delay_s``, 1 ms, when ``commit_siblings``, 4, are in flight, so they
share the fsync); it also flushes ``synchronous_commit=off`` writes within
~10 ms. A lone commit that waits for a standby first lets the WAL senders
ship its record ahead of its fsync (``_ship_ahead``; docs/internals.md,
"Shipping ahead of the flush").
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from walrus_ha.common.errors import EngineError, WrongRole
from walrus_ha.common.log import log_event
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import CommitLevel, Role
from walrus_ha.node.engine.embedded.aio import LoopSignal, LoopThread
from walrus_ha.node.engine.embedded.receiver import WalReceiver
from walrus_ha.node.engine.embedded.records import Batch, BatchOp, Delete
from walrus_ha.node.engine.embedded.sender import WalSender
from walrus_ha.node.engine.embedded.storage import Storage
from walrus_ha.node.engine.embedded.syncrep import SyncRep
from walrus_ha.node.engine.embedded.wal import SHIP_AHEAD
from walrus_ha.node.engine.embedded.writehealth import WriteHealth

log = logging.getLogger(__name__)

WALWRITER_DELAY_S = 0.01
_ALONE_PROBE_TURNS = 3      # loop turns a lone commit yields before its inline fsync (see write_async)


@dataclass(frozen=True)
class WriteResult:
    """An acknowledged write: its record's end LSN, timeline and term."""
    lsn: int
    timeline: int
    term: int


@dataclass(frozen=True)
class ReadResult:
    """A read, with how far behind the primary it may be (a standby's lag)."""
    found: bool
    value: bytes | None
    replay_lsn: int
    lag_bytes: int
    lag_s: float
    role: str


class WritePathMixin:
    """Write, read and the WAL writer for ``EmbeddedEngine``. Uses the engine
    state below (set up by ``EmbeddedEngine.__init__``); role changes take
    ``_gate`` to exclude appends."""

    name: str
    config: EmbeddedConfig
    storage: Storage | None
    syncrep: SyncRep
    write_health: WriteHealth
    default_level: CommitLevel
    receiver: WalReceiver | None    # on a standby: names the primary, tells the lag
    ship_ahead_lsn: int
    _role: Role
    _gate: threading.Lock           # role check + append vs. role changes
    _inflight: int                  # commits waiting for durability (under _gate)
    _flush_wanted: threading.Event  # a waiting commit asks the WAL writer to fsync
    _stop: threading.Event
    _loop: LoopThread | None
    _senders: dict[str, WalSender]  # poked by a lone commit's _ship_ahead
    _senders_lock: threading.Lock

    def write(self, ops: list[tuple[bytes, bytes | None]], level: CommitLevel | None) -> WriteResult:
        """Write ``ops`` (value None = delete) at ``level`` (None = the default)
        from a thread other than the engine loop: ``write_async`` run there.

        Raises WrongRole on a standby, Fenced when fenced / past the lease
        deadline (before or after writing; never acknowledged then).
        """
        loop = self._loop
        if loop is None:
            raise WrongRole(self._not_primary_text())
        if loop.on_loop:
            raise RuntimeError("EmbeddedEngine.write() on the engine loop would deadlock; await write_async()")
        return loop.run(self.write_async(ops, level))

    async def write_async(self, ops: list[tuple[bytes, bytes | None]], level: CommitLevel | None) -> WriteResult:
        """Write ``ops`` (value None = delete) at ``level`` (None = the
        default), on the engine's event loop (the Store service).

        Raises WrongRole on a standby, Fenced when fenced / past the lease
        deadline (before or after writing; never acknowledged then).

        Alone, a commit fsyncs itself (no thread hand-off). With company it
        asks the WAL writer, which fsyncs for everyone (after
        ``commit_delay_s``), so each commit waits once. A lone commit that
        waits for standbys first has its record shipped ahead of its fsync
        (``_ship_ahead``), so a standby's confirmation does not imply our
        flush: every durable commit checks its own flush before the ack.
        """
        storage, level, res, alone = self._append(ops, level)
        if level is CommitLevel.OFF:
            self.syncrep.check_ack()
            self.write_health.succeeded()
            return res
        try:
            end = res.lsn
            if alone and self.syncrep.needs_wait(level):
                self._ship_ahead(end)
            if alone:
                # Let the loop take in whatever arrived meanwhile first: an fsync
                # here blocks every stream, so a commit that is not really alone
                # must leave it to the WAL writer (else, under load, each commit
                # would find itself "alone" behind the previous one's fsync).
                for _ in range(_ALONE_PROBE_TURNS):
                    await asyncio.sleep(0)
                alone = self._inflight == 1
            if alone:
                self._flush(storage, end)   # nobody to share the fsync with: no hand-off
            elif not self._flush_wanted.is_set():
                self._flush_wanted.set()
            if self.syncrep.needs_wait(level):
                if alone:
                    await asyncio.sleep(0)  # the WAL senders (woken by our flush) ship it first
                await self.syncrep.wait_async(end, level)
            if storage.wal.flush_lsn < end and not await self._flushed_async(storage.wal, end, 1.0):
                self._flush(storage, end)
            self.syncrep.check_ack()
            self.write_health.succeeded()
        finally:
            with self._gate:
                self._inflight -= 1
        return res

    def _flush(self, storage, end: int) -> None:
        """``storage.flush(end)``, remembering a failure in ``write_health``."""
        try:
            storage.flush(end)
        except EngineError as exc:
            self.write_health.failed("WAL flush", exc)
            raise

    def _ship_ahead(self, end: int) -> None:
        """Let the WAL senders ship up to ``end`` before it is flushed here,
        so our fdatasync overlaps the standby's. Only for a lone commit:
        under load, chunks cut at every commit would cost more than they
        save. The senders never go past flush LSN + SHIP_AHEAD."""
        if end - self.storage.wal.flush_lsn > SHIP_AHEAD:
            return
        self.ship_ahead_lsn = max(self.ship_ahead_lsn, end)
        with self._senders_lock:
            senders = list(self._senders.values())
        for s in senders:
            s.poke()

    @staticmethod
    async def _flushed_async(wal, end: int, timeout: float) -> bool:
        """Await (on the event loop) the WAL writer flushing up to ``end``."""
        sig = LoopSignal()

        def on_flush(flush_lsn: int) -> None:
            if flush_lsn >= end:
                sig.set()
        wal.add_flush_listener(on_flush)
        try:
            if wal.flush_lsn >= end:
                return True
            await sig.wait(timeout)
            return wal.flush_lsn >= end
        finally:
            wal.remove_flush_listener(on_flush)

    def _append(self, ops: list[tuple[bytes, bytes | None]], level: CommitLevel | None):
        """Role check + WAL append under the gate: (storage, level, result,
        alone). For a durable level the caller owns one ``_inflight`` count
        and must drop it; ``alone`` = no other commit is waiting."""
        level = level or self.default_level
        storage = self.storage
        alone = False
        with self._gate:
            if self._role is not Role.PRIMARY or storage is None:
                raise WrongRole(self._not_primary_text())
            self.syncrep.check_ack()
            try:
                if len(ops) == 1 and ops[0][1] is not None:
                    _, end = storage.put(ops[0][0], ops[0][1])
                elif len(ops) == 1:
                    _, end = storage.apply_local(Delete(ops[0][0]))
                else:
                    _, end = storage.apply_local(Batch(tuple(BatchOp(k, v) for k, v in ops)))
            except EngineError as exc:      # disk full, I/O error: status and the orchestrator see it
                self.write_health.failed("WAL append", exc)
                raise
            res = WriteResult(end, storage.timeline, storage.control.term)
            if level is not CommitLevel.OFF:
                self._inflight += 1
                alone = self._inflight == 1
        return storage, level, res, alone

    def _not_primary_text(self) -> str:
        if self._role is Role.STANDBY:
            up = self.receiver.upstream if self.receiver else None
            where = f"the primary is {up}" if up else "it follows no primary right now"
            return f"{self.name} is a read-only standby; {where}"
        return f"{self.name} is not running"

    def read(self, key: bytes) -> ReadResult:
        storage = self.storage
        if storage is None:
            raise WrongRole(self._not_primary_text())
        value = storage.get(key)
        lag_bytes, lag_s = (0, 0.0)
        if self._role is Role.STANDBY and self.receiver is not None:
            lag_bytes, lag_s = self.receiver.lag()
        return ReadResult(value is not None, value, storage.replay_lsn, lag_bytes, lag_s, self._role.value)

    def _walwriter(self) -> None:
        """Flush at once when a synchronous commit asks (``_flush_wanted``),
        else flush ``off`` commits within ~WALWRITER_DELAY_S (0.2 s when idle).
        Concurrent flushes share one fsync (group commit in ``Wal.flush``)."""
        while not self._stop.is_set():
            storage = self.storage
            if storage is None:
                return
            wal = storage.wal
            pending = wal.flush_lsn < wal.write_lsn
            if self._flush_wanted.wait(WALWRITER_DELAY_S if pending else 0.2):
                self._flush_wanted.clear()
                if self._inflight >= self.config.commit_siblings and self.config.commit_delay_s > 0:
                    # like PostgreSQL's commit_delay: with many commits in flight,
                    # let a few more join this fsync (fewer fsyncs, chunks and
                    # feedback messages per commit: ~30% more commits/s here)
                    self._stop.wait(self.config.commit_delay_s)
            if self._stop.is_set() or wal.flush_lsn >= wal.write_lsn:
                continue
            try:
                storage.flush()
            except EngineError as exc:
                log_event(log, "walwriter_flush_failed", logging.ERROR, error=exc)
                if self._role is Role.PRIMARY:
                    self.write_health.failed("WAL flush", exc)
                self._stop.wait(0.1)
