"""What a load balancer or a probe may conclude about this member: pure.

The one rule: every answer of the agent's HTTP API (``httpapi``) and of its
role-aware gRPC health (``rolehealth``) is decided here, from a frozen
``MemberFacts`` (built by the agent from its last status, its lease and its
last etcd view; no I/O, no clock: ``now`` is folded into the facts).

* primary:  holds the leader key, engine PRIMARY and unfenced, agent state
  PRIMARY, lease not past its fencing deadline (``lease_valid``).
* replica:  engine STANDBY, streaming from an upstream, not waiting for a
  re-clone; with a ``lag`` threshold, also lag known and <= threshold.
* sync / async: a replica inside / outside the published synchronous set.
* health: the engine runs (PRIMARY or STANDBY) and the agent is not stopping.
* liveness: the agent loop began an iteration within its limit (or is in a
  long step: bootstrap, clone, rejoin).
* readiness: primary, or a replica (no lag threshold).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from walrus_ha.common.records import ClusterView
from walrus_ha.common.status import Role
from walrus_ha.node.agent.status import AgentState, AgentStatus


class Check(enum.Enum):
    """One endpoint's meaning (several paths may share one)."""
    PRIMARY = "primary"
    REPLICA = "replica"
    READ_ONLY = "read-only"
    SYNC = "sync"
    ASYNC = "async"
    HEALTH = "health"
    LIVENESS = "liveness"
    READINESS = "readiness"
    STATUS = "status"          # always 200 while the agent answers


# Patroni-compatible paths (``/`` answers like ``/primary``, as Patroni's does).
PATHS: dict[str, Check] = {
    "/": Check.PRIMARY, "/primary": Check.PRIMARY, "/leader": Check.PRIMARY,
    "/master": Check.PRIMARY, "/read-write": Check.PRIMARY,
    "/replica": Check.REPLICA, "/read-only": Check.READ_ONLY,
    "/sync": Check.SYNC, "/synchronous": Check.SYNC, "/read-only-sync": Check.SYNC,
    "/async": Check.ASYNC, "/asynchronous": Check.ASYNC,
    "/health": Check.HEALTH, "/liveness": Check.LIVENESS, "/readiness": Check.READINESS,
    "/status": Check.STATUS, "/patroni": Check.STATUS,
}

OK = 200
UNAVAILABLE = 503
BAD_REQUEST = 400
NOT_FOUND = 404


@dataclass(frozen=True)
class MemberFacts:
    """This member as the probes see it (plain values).

    ``lag_bytes`` is None when unknown (no leader record or not a standby);
    ``loop_age_s`` is the time since the agent loop last began an iteration
    and ``loop_limit_s`` the age past which it counts as stuck.
    """
    role: Role
    state: AgentState
    holds_leader: bool
    fenced: bool
    lease_valid: bool
    streaming: bool
    needs_reclone: bool
    in_sync_set: bool
    lag_bytes: int | None
    loop_age_s: float
    loop_limit_s: float
    stopping: bool = False


def is_primary(f: MemberFacts) -> bool:
    return (f.holds_leader and f.role is Role.PRIMARY and not f.fenced and f.lease_valid
            and f.state is AgentState.PRIMARY and not f.stopping)


def is_replica(f: MemberFacts, max_lag: int | None = None) -> bool:
    if f.role is not Role.STANDBY or not f.streaming or f.needs_reclone or f.stopping:
        return False
    if max_lag is None:
        return True
    return f.lag_bytes is not None and f.lag_bytes <= max_lag


def is_healthy(f: MemberFacts) -> bool:
    return f.role in (Role.PRIMARY, Role.STANDBY) and not f.stopping


# A clone, bootstrap, rejoin or planned restart holds the loop (or its lock) and may take long.
_LONG_STEPS = (AgentState.BOOTSTRAPPING, AgentState.CLONING, AgentState.REJOINING, AgentState.RESTARTING)


def is_live(f: MemberFacts) -> bool:
    return (f.loop_age_s <= f.loop_limit_s or f.state in _LONG_STEPS) and not f.stopping


def passes(check: Check, f: MemberFacts, max_lag: int | None = None) -> bool:
    """Does the member pass ``check`` (``max_lag``: bytes, replica checks only)?"""
    if check is Check.PRIMARY:
        return is_primary(f)
    if check is Check.REPLICA:
        return is_replica(f, max_lag)
    if check is Check.READ_ONLY:
        return is_primary(f) or is_replica(f, max_lag)
    if check is Check.SYNC:
        return is_replica(f, max_lag) and f.in_sync_set
    if check is Check.ASYNC:
        return is_replica(f, max_lag) and not f.in_sync_set
    if check is Check.HEALTH:
        return is_healthy(f)
    if check is Check.LIVENESS:
        return is_live(f)
    if check is Check.READINESS:
        return is_primary(f) or is_replica(f)
    return check is Check.STATUS


def facts_from(status: AgentStatus | None, view: ClusterView | None, *, holds_leader: bool,
               lease_valid: bool, loop_age_s: float, loop_limit_s: float, stopping: bool) -> MemberFacts:
    """``MemberFacts`` from the agent's last status and etcd view. The lag is
    the leader's published flush LSN minus this member's flush/replay LSN
    (None when this is no standby or the leader's record is missing); the
    sync set is the ``sync`` record of the current leader. No status yet:
    an engine that is not running."""
    if status is None:
        return MemberFacts(role=Role.STOPPED, state=AgentState.STARTING, holds_leader=holds_leader, fenced=True,
                           lease_valid=lease_valid, streaming=False, needs_reclone=False, in_sync_set=False,
                           lag_bytes=None, loop_age_s=loop_age_s, loop_limit_s=loop_limit_s, stopping=stopping)
    e = status.engine
    lag = None
    in_sync = False
    lead = view.leader if view is not None else None
    if view is not None and lead is not None and e.role is Role.STANDBY:
        rec = view.member(lead.name)
        if rec is not None and rec.name != status.name:
            lag = max(0, rec.flush_lsn - max(e.flush_lsn, e.replay_lsn))
        sync = view.sync
        in_sync = (sync is not None and sync.leader == lead.name and sync.num > 0
                   and status.name in sync.names)
    return MemberFacts(role=e.role, state=status.state, holds_leader=holds_leader, fenced=e.fenced,
                       lease_valid=lease_valid, streaming=e.streaming, needs_reclone=e.needs_reclone,
                       in_sync_set=in_sync, lag_bytes=lag, loop_age_s=loop_age_s, loop_limit_s=loop_limit_s,
                       stopping=stopping)


_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


class BadQuery(ValueError):
    """A query parameter that cannot be read (the answer is 400)."""


def parse_size(text: str) -> int:
    """Bytes in ``text``: a plain integer or PostgreSQL style ``16kB``,
    ``10MB``, ``1GB``, ``1TB`` (1024-based, case-insensitive). Raises BadQuery."""
    m = _SIZE.match(text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise BadQuery(f"lag must be bytes or a size like 10MB, not {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def answer(path: str, query: dict[str, list[str]], f: MemberFacts) -> int:
    """The HTTP status code for ``path`` (query already split, as
    ``urllib.parse.parse_qs`` gives it): 200 or 503 for a known path, 400
    for an unreadable ``lag``, 404 for an unknown path."""
    check = PATHS.get(path.rstrip("/") or "/")
    if check is None:
        return NOT_FOUND
    lag = query.get("lag")
    try:
        max_lag = parse_size(lag[-1]) if lag else None
    except BadQuery:
        return BAD_REQUEST
    return OK if passes(check, f, max_lag) else UNAVAILABLE


__all__ = ["Check", "MemberFacts", "PATHS", "facts_from", "BadQuery", "parse_size", "answer", "passes",
           "is_primary", "is_replica", "is_healthy", "is_live"]
