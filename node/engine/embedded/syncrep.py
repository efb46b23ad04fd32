"""Synchronous replication: which LSN the synchronous standby set confirmed,
and the waiters that hold a commit's acknowledgement until it did.

The rule of this module: **an acknowledgement is released only through
``SyncRep.wait`` / ``SyncRep.check_ack``, and both raise ``Fenced`` instead of
returning once the engine is fenced or its lease deadline has passed.**

The top half is pure (``confirmed_lsn``, ``sync_states``): plain values in,
plain values out, no clock, no threads. ``SyncRep`` is the thin stateful shell
around it (positions of connected standbys + waiters), with an injected
monotonic clock.

Semantics follow PostgreSQL's ``synchronous_standby_names``:

* ``FIRST n (a, b, c)``: the first ``n`` *connected* names in list order are
  the synchronous standbys; a position is confirmed when all of them reached it.
* ``ANY n (a, b, c)``: a position is confirmed when any ``n`` connected names
  of the list reached it (quorum).
* Fewer than ``n`` connected standbys of the set: nothing is confirmed and a
  synchronous commit waits (it never silently degrades to async).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from walrus_ha.common.errors import Fenced
from walrus_ha.node.engine.base import CommitLevel, SyncMethod, SyncSpec
from walrus_ha.node.engine.embedded.aio import LoopSignal

REMOTE_LEVELS = (CommitLevel.REMOTE_WRITE, CommitLevel.ON, CommitLevel.REMOTE_APPLY)


@dataclass(frozen=True)
class StandbyPosition:
    """What one connected standby confirmed (its latest feedback)."""
    name: str
    write_lsn: int = 0
    flush_lsn: int = 0
    apply_lsn: int = 0

    def lsn_for(self, level: CommitLevel) -> int:
        """The position relevant for ``level`` (remote_write/on/remote_apply)."""
        if level is CommitLevel.REMOTE_WRITE:
            return self.write_lsn
        if level is CommitLevel.REMOTE_APPLY:
            return self.apply_lsn
        return self.flush_lsn


def _members(spec: SyncSpec, positions: Mapping[str, StandbyPosition]) -> list[StandbyPosition]:
    """Connected standbys of the set, in the set's list order (duplicates once)."""
    seen: set[str] = set()
    out = []
    for name in spec.names:
        if name in positions and name not in seen:
            seen.add(name)
            out.append(positions[name])
    return out


def confirmed_lsn(spec: SyncSpec, positions: Mapping[str, StandbyPosition],
                  level: CommitLevel) -> int | None:
    """The highest LSN the synchronous set has confirmed at ``level``.

    ``positions`` holds only *connected* standbys. Returns None when fewer than
    ``spec.num`` standbys of the set are connected (a commit must wait), and
    raises ValueError for a level that does not involve standbys or a spec
    that is not enabled (the caller decides those cases).
    """
    if level not in REMOTE_LEVELS:
        raise ValueError(f"commit level {level.value!r} does not wait for standbys")
    if not spec.enabled:
        raise ValueError("no synchronous standby set is configured")
    members = _members(spec, positions)
    if len(members) < spec.num:
        return None
    if spec.method is SyncMethod.FIRST:
        return min(p.lsn_for(level) for p in members[:spec.num])
    ranked = sorted((p.lsn_for(level) for p in members), reverse=True)
    return ranked[spec.num - 1]


def sync_states(spec: SyncSpec, connected: list[str] | tuple[str, ...]) -> dict[str, str]:
    """pg_stat_replication's ``sync_state`` for each connected standby name:
    ``sync`` / ``potential`` (FIRST), ``quorum`` (ANY), else ``async``."""
    out = {name: "async" for name in connected}
    if not spec.enabled:
        return out
    in_set = [n for n in dict.fromkeys(spec.names) if n in out]
    for i, name in enumerate(in_set):
        if spec.method is SyncMethod.ANY:
            out[name] = "quorum"
        else:
            out[name] = "sync" if i < spec.num else "potential"
    return out


class _Signal:
    """A resettable flag on one bare lock: cheaper than ``threading.Event``
    (no Condition), which matters with one per waiting commit. ``set`` and
    ``clear`` are called under ``SyncRep._lock``; only the owner calls
    ``wait`` and ``clear``."""
    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def clear(self) -> None:
        if self._set:
            self._set = False
            self._lock.acquire()

    def wait(self, timeout: float | None) -> bool:
        if self._set:
            return True
        got = self._lock.acquire(timeout=-1 if timeout is None else timeout)
        if got:
            self._lock.release()    # stay "set" until clear()
        return got


class _Waiter:
    __slots__ = ("lsn", "level", "event", "error")

    def __init__(self, lsn: int, level: CommitLevel, event: _Signal | LoopSignal):
        self.lsn = lsn
        self.level = level
        self.event = event
        self.error: str | None = None


class SyncRep:
    """Standby positions + commit waiters of one primary. Thread-safe.

    ``wait(lsn, level)`` blocks until the synchronous set confirmed ``lsn`` at
    ``level``; it raises ``Fenced`` when the engine is fenced or when the lease
    deadline (``set_lease_deadline``) passes first. Each waiter has its own
    Event, so a feedback message wakes only the commits it satisfies.
    """

    def __init__(self, spec: SyncSpec = SyncSpec(), clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._spec = spec
        self._positions: dict[str, StandbyPosition] = {}
        self._waiters: list[_Waiter] = []
        self._fence_reason: str | None = None
        self._deadline: float | None = None

    # -- configuration --------------------------------------------------
    @property
    def spec(self) -> SyncSpec:
        return self._spec

    def set_spec(self, spec: SyncSpec) -> None:
        """Change the synchronous set; waiters are re-evaluated against it."""
        with self._lock:
            self._spec = spec
            self._release_locked()

    def fence(self, reason: str) -> None:
        """Fail every pending and future wait with ``Fenced(reason)``."""
        with self._lock:
            self._fence_reason = reason or "fenced"
            for w in self._waiters:
                w.event.set()
            self._waiters.clear()

    def abort_waiters(self, reason: str) -> None:
        """Fail every pending wait with ``Fenced(reason)`` (e.g. on demotion),
        without fencing future ones."""
        with self._lock:
            for w in self._waiters:
                w.error = reason
                w.event.set()
            self._waiters.clear()

    def unfence(self) -> None:
        with self._lock:
            self._fence_reason = None

    @property
    def fence_reason(self) -> str | None:
        return self._fence_reason

    def set_lease_deadline(self, deadline: float | None) -> None:
        """No acknowledgement after ``deadline`` (monotonic seconds); None = no limit."""
        with self._lock:
            self._deadline = deadline
            for w in self._waiters:   # let sleepers re-check their timeout
                w.event.set()

    # -- standby positions ---------------------------------------------
    def update(self, pos: StandbyPosition) -> None:
        """Record a connected standby's feedback and release satisfied waiters."""
        with self._lock:
            self._positions[pos.name] = pos
            if self._waiters:
                self._release_locked()

    def disconnect(self, name: str) -> None:
        with self._lock:
            self._positions.pop(name, None)

    def positions(self) -> dict[str, StandbyPosition]:
        with self._lock:
            return dict(self._positions)

    # -- acknowledgements ----------------------------------------------
    def check_ack(self) -> None:
        """Raise ``Fenced`` if an acknowledgement may not be sent right now."""
        reason = self._fence_reason
        if reason is not None:
            raise Fenced(f"engine is fenced: {reason}")
        deadline = self._deadline
        if deadline is not None and self._clock() >= deadline:
            raise Fenced("leader lease deadline passed; write not acknowledged")

    def needs_wait(self, level: CommitLevel) -> bool:
        """True when ``level`` waits for standbys under the current set."""
        return level in REMOTE_LEVELS and self._spec.enabled

    def wait(self, lsn: int, level: CommitLevel, timeout: float | None = None) -> bool:
        """Block until the set confirmed ``lsn`` at ``level``.

        Returns True when confirmed (or when no wait is needed), False after
        ``timeout`` seconds. Raises ``Fenced`` when fenced or past the lease
        deadline, before or during the wait.
        """
        w = self._enlist(lsn, level, _Signal)
        if w is None:
            return True
        give_up = None if timeout is None else self._clock() + timeout
        try:
            while True:
                done, slice_s = self._step(w, give_up)
                if done is not None:
                    return done
                w.event.wait(slice_s)
        finally:
            self._delist(w)

    async def wait_async(self, lsn: int, level: CommitLevel, timeout: float | None = None) -> bool:
        """``wait`` for a coroutine on an event loop: the same rules, but it
        awaits a ``LoopSignal`` instead of blocking its thread, so one loop
        thread can hold thousands of waiting commits."""
        w = self._enlist(lsn, level, LoopSignal)
        if w is None:
            return True
        give_up = None if timeout is None else self._clock() + timeout
        try:
            while True:
                done, slice_s = self._step(w, give_up)
                if done is not None:
                    return done
                await w.event.wait(slice_s)
        finally:
            self._delist(w)

    def _enlist(self, lsn: int, level: CommitLevel, signal_type) -> _Waiter | None:
        """Check, then register a waiter; None when no wait is needed."""
        self.check_ack()
        if not self.needs_wait(level):
            return None
        with self._lock:
            if self._satisfied_locked(lsn, level):
                return None
            w = _Waiter(lsn, level, signal_type())
            self._waiters.append(w)
            return w

    def _step(self, w: _Waiter, give_up: float | None) -> tuple[bool | None, float | None]:
        """One turn of a wait: (True/False = return that, None = sleep for
        the returned slice, None = until woken). Raises ``Fenced``."""
        self.check_ack()
        if w.error is not None:
            raise Fenced(f"write not acknowledged: {w.error}")
        if w.event.is_set():
            with self._lock:
                if self._satisfied_locked(w.lsn, w.level):
                    return True, None
                w.event.clear()
                if w not in self._waiters:
                    self._waiters.append(w)
        now = self._clock()
        if give_up is not None and now >= give_up:
            return False, None
        limits = [t for t in (give_up, self._deadline) if t is not None]
        return None, (max(0.0, min(limits) - now) if limits else None)

    def _delist(self, w: _Waiter) -> None:
        with self._lock:
            if w in self._waiters:
                self._waiters.remove(w)

    def _satisfied_locked(self, lsn: int, level: CommitLevel) -> bool:
        if not self.needs_wait(level):
            return True
        got = confirmed_lsn(self._spec, self._positions, level)
        return got is not None and got >= lsn

    def _release_locked(self) -> None:
        if not self._waiters:
            return
        cache: dict[CommitLevel, int | None] = {}
        keep = []
        for w in self._waiters:
            if not self.needs_wait(w.level):
                w.event.set()
                continue
            if w.level not in cache:
                cache[w.level] = confirmed_lsn(self._spec, self._positions, w.level)
            got = cache[w.level]
            if got is not None and got >= w.lsn:
                w.event.set()
            else:
                keep.append(w)
        self._waiters = keep
