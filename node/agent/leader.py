"""Lease renewal and self-fencing of the node agent.

The one rule (docs/design.md, safety 2): while this node holds the leader
key, no write may be acknowledged later than ``t_sent + ttl - safety_margin``,
where ``t_sent`` is the monotonic instant the last *successful* renewal was
sent. etcd restarts the lease's ttl when it receives the renewal, which is
after it was sent, so the lease cannot expire before that deadline.

The arithmetic is pure (``LeaseState`` + ``plan``; the clock is an argument);
``LeaseKeeper`` is the thin thread that runs it against the DCS.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)


class LeaseAction(enum.Enum):
    WAIT = "wait"      # nothing to do until ``LeasePlan.wake_at``
    RENEW = "renew"    # send a renewal now
    FENCE = "fence"    # the deadline passed while holding the leader: fence now


@dataclass(frozen=True)
class LeaseState:
    """What the renewal loop knows; every instant is ``time.monotonic()`` seconds.

    ``confirmed_sent_at``: when the last renewal (or the grant) that etcd
    confirmed was sent. ``attempted_at``: when the last renewal attempt was
    sent, successful or not (spaces out retries). ``holding``: this node holds
    the leader key, so a missed deadline means fencing. ``fenced``: the
    deadline was already acted upon (so FENCE is planned once per miss).
    """
    ttl: float
    safety_margin: float
    confirmed_sent_at: float
    attempted_at: float
    holding: bool = False
    fenced: bool = False

    @property
    def interval(self) -> float:
        """Renewal period: ttl/3, so two renewals can fail before the deadline."""
        return self.ttl / 3.0

    @property
    def holder_interval(self) -> float:
        """Renewal period while holding the leader key: (ttl - safety_margin)/6.
        How long etcd may not answer before the holder must fence is the
        deadline's reach minus the time since the last confirmed renewal; an
        etcd member loss that takes the raft leader stops every renewal for an
        election (1.7 s seen with a 500 ms election timeout on a busy host),
        more than ttl/3 renewals leave at ttl 3 (1.25 s)."""
        return (self.ttl - self.safety_margin) / 6.0

    @property
    def retry_wait(self) -> float:
        """Pause between failed attempts (a quarter of the renewal period)."""
        return self.interval / 4.0

    @property
    def deadline(self) -> float:
        """Last instant at which a write may be acknowledged."""
        return lease_deadline(self.confirmed_sent_at, self.ttl, self.safety_margin)

    def remaining(self, now: float) -> float:
        """Seconds of lease etcd certainly still grants (never negative)."""
        return max(0.0, self.confirmed_sent_at + self.ttl - now)


def lease_deadline(sent_at: float, ttl: float, safety_margin: float) -> float:
    """``sent_at + ttl - safety_margin``: the fencing deadline after a renewal
    sent at ``sent_at`` succeeded."""
    return sent_at + ttl - safety_margin


def new_state(ttl: float, safety_margin: float, granted_sent_at: float) -> LeaseState:
    """State right after a lease grant that was sent at ``granted_sent_at``."""
    if not 0 <= safety_margin < ttl:
        raise ValueError(f"safety_margin {safety_margin} must be in [0, ttl={ttl})")
    return LeaseState(ttl, safety_margin, granted_sent_at, granted_sent_at)


def renewed(state: LeaseState, sent_at: float) -> LeaseState:
    """A renewal sent at ``sent_at`` succeeded. Never moves the deadline back
    (a late answer to an older renewal proves less than a newer one)."""
    return replace(state, confirmed_sent_at=max(state.confirmed_sent_at, sent_at),
                   attempted_at=max(state.attempted_at, sent_at), fenced=False)


def attempted(state: LeaseState, sent_at: float) -> LeaseState:
    """A renewal sent at ``sent_at`` failed (or is in flight)."""
    return replace(state, attempted_at=max(state.attempted_at, sent_at))


def holding(state: LeaseState, value: bool) -> LeaseState:
    """Start or stop holding the leader key."""
    return replace(state, holding=value, fenced=False)


def fenced(state: LeaseState) -> LeaseState:
    """The missed deadline was acted upon."""
    return replace(state, fenced=True)


@dataclass(frozen=True)
class LeasePlan:
    action: LeaseAction
    wake_at: float      # when to plan again (== now for RENEW / FENCE)
    reason: str = ""


def plan(state: LeaseState, now: float) -> LeasePlan:
    """Decide what the renewal loop does at ``now``.

    FENCE comes first: once the deadline passed while holding, no renewal
    result can make earlier acknowledgements safe again, so the engine is
    fenced before anything else is tried.
    """
    if state.holding and not state.fenced and now >= state.deadline:
        late = now - state.deadline
        return LeasePlan(LeaseAction.FENCE, now,
                         f"no lease renewal confirmed for ttl-safety_margin "
                         f"({state.ttl - state.safety_margin:g}s, {late:.3f}s late)")
    period = state.holder_interval if state.holding and not state.fenced else state.interval
    due = max(state.confirmed_sent_at + period, state.attempted_at + state.retry_wait)
    if now >= due:
        return LeasePlan(LeaseAction.RENEW, now)
    wake = due
    if state.holding and not state.fenced:
        wake = min(wake, state.deadline)
    return LeasePlan(LeaseAction.WAIT, wake)


class LeaseDcs(Protocol):
    def refresh_lease(self, lease_id: int, *, deadline_s: float | None = None) -> float: ...


class LeaseKeeper:
    """Renews one etcd lease every ttl/3 (the leader key's holder: every
    (ttl - safety_margin)/6) in its own thread and fences on a miss.

    Callbacks (called from the keeper thread, must not block long):
    ``on_renewed(deadline)`` after each successful renewal while holding (the
    agent extends the engine's lease deadline); ``on_deadline(reason)`` when
    the deadline passed while holding (the agent fences); ``on_lost(reason)``
    when etcd says the lease is gone (the agent fences, drops the leader role
    and grants a new lease through ``reset``). After ``on_lost`` the keeper
    idles until ``reset``.
    """

    def __init__(self, dcs: LeaseDcs, ttl: float, safety_margin: float, *,
                 on_renewed: Callable[[float], None], on_deadline: Callable[[str], None],
                 on_lost: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self._dcs = dcs
        self._ttl = ttl
        self._margin = safety_margin
        self._on_renewed = on_renewed
        self._on_deadline = on_deadline
        self._on_lost = on_lost
        self._clock = clock
        self._lock = threading.Lock()
        self._renew_lock = threading.Lock()   # one renewal in flight at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lease_id: int | None = None
        self._state: LeaseState | None = None
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    # -- control (any thread) ------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def reset(self, lease_id: int | None, granted_sent_at: float = 0.0, ttl: float | None = None) -> None:
        """Track a freshly granted lease (None: no lease, idle); ``ttl``: the
        one it was granted with, when the cluster config changed it since
        (the deadline of a lease always counts with its own ttl)."""
        with self._lock:
            if ttl is not None:
                self._ttl = ttl
            self._lease_id = lease_id
            self._state = None if lease_id is None else new_state(self._ttl, self._margin, granted_sent_at)
        self._wake.set()

    def set_holding(self, value: bool) -> None:
        with self._lock:
            if self._state is not None:
                self._state = holding(self._state, value)
        self._wake.set()

    @property
    def lease_id(self) -> int | None:
        with self._lock:
            return self._lease_id

    def snapshot(self) -> LeaseState | None:
        with self._lock:
            return self._state

    def renew_now(self) -> float:
        """Renew synchronously; returns the new deadline. Raises LeaseLost /
        DcsUnavailable (the caller decides; ``on_lost`` is not called)."""
        lease_id = self.lease_id
        if lease_id is None:
            raise LeaseLost("no lease granted")
        with self._renew_lock:
            sent = self._clock()
            self._dcs.refresh_lease(lease_id, deadline_s=self._ttl / 3.0)
        with self._lock:
            if self._lease_id != lease_id or self._state is None:
                raise LeaseLost("lease replaced while renewing")
            self._state = renewed(self._state, sent)
            return self._state.deadline

    # -- the thread ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                state, lease_id = self._state, self._lease_id
            if state is None or lease_id is None:
                self._wait(None)
                continue
            now = self._clock()
            step = plan(state, now)
            if step.action is LeaseAction.WAIT:
                self._wait(step.wake_at - now)
            elif step.action is LeaseAction.FENCE:
                self._fence(lease_id, step.reason)
            else:
                self._renew(lease_id, state)

    def _wait(self, seconds: float | None) -> None:
        self._wake.wait(timeout=None if seconds is None else max(0.0, seconds))
        self._wake.clear()

    def _fence(self, lease_id: int, reason: str) -> None:
        with self._lock:
            if self._lease_id != lease_id or self._state is None:
                return
            self._state = fenced(self._state)
        log_event(log, "lease.deadline_missed", logging.WARNING, action="fence", reason=reason)
        self._on_deadline(reason)

    def _renew(self, lease_id: int, state: LeaseState) -> None:
        with self._renew_lock:
            sent = self._clock()
            # Holding: keep this renewal in flight up to the fencing deadline,
            # never past it (a renewal that gives up earlier is only sent again
            # after retry_wait, e.g. while etcd elects a new raft leader).
            # Otherwise: up to a period.
            budget = state.interval
            if state.holding and not state.fenced:
                budget = state.deadline - sent
            try:
                self._dcs.refresh_lease(lease_id, deadline_s=max(0.05, budget))
                error = None
            except (LeaseLost, DcsUnavailable) as exc:
                error = exc
        with self._lock:
            if self._lease_id != lease_id or self._state is None:
                return          # replaced meanwhile; the answer is about an old lease
            if error is None:
                self._state = renewed(self._state, sent)
                state = self._state
            else:
                self._state = attempted(self._state, sent)
                state = None
        if isinstance(error, LeaseLost):
            with self._lock:
                if self._lease_id == lease_id:
                    self._lease_id, self._state = None, None
            log_event(log, "lease.lost", logging.WARNING, lease=f"{lease_id:x}", reason=str(error))
            self._on_lost(str(error) or "lease expired")
        elif error is not None:
            log_event(log, "lease.renew_failed", logging.WARNING, lease=f"{lease_id:x}", error=str(error))
        elif state is not None and state.holding:
            self._on_renewed(state.deadline)
