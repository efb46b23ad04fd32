"""The decision core's data model: what ``decide`` reads and what it returns.

The one rule: plain frozen data, no I/O. The controller builds one
``ClusterSnapshot`` per loop (etcd ``read_view()`` + each agent's
``GetStatus``), calls ``decide(snapshot, config, now, previous=state)`` and
executes ``Decision.actions`` **in order**, stopping at the first failure
(the next loop decides again from a fresh snapshot). Every action is
idempotent, so repeating one, or a successor orchestrator redoing the tail of
an interrupted sequence, is harmless.

Snapshot (input)
  * ``ClusterSnapshot.term``: the etcd ``term`` key (0 = absent).
  * ``leader``: ``LeaderView`` from the ``leader`` key, None when absent.
  * ``members``: one ``MemberView`` per member key or known agent. The
    controller should query the leader's agent before the standbys' (the sync
    set logic relies on standby LSNs being read no earlier than the leader's).
    Reachability is three-valued: ``reachable`` (GetStatus answered),
    unreachable by timeout (``reachable=False, agent_up=True``: maybe hung or
    partitioned) and refused (``reachable=False, agent_up=False``: the port
    refused the connection, the agent is provably dead). For an unreachable
    member the LSNs etc. come from its member key, if any.
  * ``sync``: the published ``sync`` key as ``SyncView``, None when absent.
  * ``paused``, ``switchover`` (operator request), ``failover`` (the in-flight
    ``FailoverState`` an earlier decision asked to save, for a successor
    orchestrator to finish the job), ``last_known_primary_lsn`` (the highest
    flush LSN the controller ever saw the current/previous primary report;
    0 = unknown), ``initialized`` (the ``initialize`` key exists),
    ``last_leader`` (the name of the last leader the controller saw, "" if
    none; recorded as ``old_leader`` in history); ``term_floor``, ``keyspace_lost_at``: ``core.reseed``.

Decision (output)
  ``state`` (``State``), ``actions`` (tuple of the ``Action`` dataclasses
  below, each with a ``kind: ActionKind``), ``reason`` (one sentence),
  ``ranking`` (the candidate ranking when one was computed) and
  ``transition`` (``previous -> state`` record, None when unchanged).

Enums are stored/sent as their ``.value`` strings, which match
``common.records`` (``"primary"``, ``"first"``, ``"failover"``). ``Role`` and
``SyncMethod`` are ``common.status``'s: one definition for the engine, the
records and the core.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from walrus_ha.common.status import Role as Role
from walrus_ha.common.status import SyncMethod as SyncMethod
from walrus_ha.orchestrator.core.requests import RequestOutcome as RequestOutcome
from walrus_ha.orchestrator.core.requests import SwitchoverRequest as SwitchoverRequest
from walrus_ha.orchestrator.core.states import State, Transition


class OperationKind(enum.Enum):
    """What an in-flight operation / history record is about."""
    FAILOVER = "failover"
    SWITCHOVER = "switchover"


class Phase(enum.Enum):
    """Where an in-flight failover/switchover is."""
    DEMOTING = "demoting"      # switchover: old leader asked to step down
    PROMOTING = "promoting"    # winner asked to take the leader key with ``term``
    SYNCING = "syncing"        # synchronous mode: the winner leads (history written); the record is
                               # kept until its first synchronous set is published, because until then
                               # only its ``promoted_bound`` says who holds every acknowledged write


class Exclusion(enum.Enum):
    """Why a member cannot be promoted."""
    NOFAILOVER = "nofailover"
    AGENT_DOWN = "agent_down"            # connection refused
    UNREACHABLE = "unreachable"          # GetStatus timed out
    NO_MEMBER_KEY = "no_member_key"      # its lease in etcd is gone
    ENGINE_STOPPED = "engine_stopped"
    NEEDS_RECLONE = "needs_reclone"
    LAG = "lag"                          # over maximum_lag_on_failover
    NOT_IN_SYNC_SET = "not_in_sync_set"
    PROMOTE_FAILED = "promote_failed"    # an earlier Promote timed out
    OLD_LEADER = "old_leader"            # switchover: the leader stepping down
    CANNOT_WRITE = "cannot_write"        # the leader whose writes fail (disk full), being replaced



@dataclass(frozen=True)
class MemberView:
    """One member as the controller sees it this loop.

    ``upstream`` may be ``name`` or ``name@host:port``; ``upstream_name``
    gives the name. ``priority`` comes from the ``priority`` tag (higher wins
    ties), ``nofailover`` from the ``nofailover`` tag. ``sync_applied`` is the
    synchronous standby set the engine currently uses (``EngineStatus.
    sync_standbys``, e.g. ``FIRST 1 (b)``), meaningful on the primary.
    """
    name: str
    reachable: bool = True
    agent_up: bool = True
    role: Role = Role.STANDBY
    timeline: int = 0
    term: int = 0
    flush_lsn: int = 0
    replay_lsn: int = 0
    streaming: bool = False
    upstream: str = ""
    fenced: bool = False
    needs_reclone: bool = False
    nofailover: bool = False
    priority: int = 0
    has_member_key: bool = True
    sync_applied: str = ""
    write_error: str = ""           # the engine says writes fail ("" = they work)
    write_error_since: float = 0.0  # wall time of the first failure in a row
    highest_term: int = 0      # the highest term it has seen (from its member record)
    restarting_until: float = 0.0   # wall time a planned engine restart's deadline passes (0: none)

    @property
    def upstream_name(self) -> str:
        """The upstream's member name (``upstream`` without ``@address``)."""
        return self.upstream.partition("@")[0].strip()

    @property
    def provably_dead(self) -> bool:
        """The agent's port refused the connection (not a mere timeout)."""
        return not self.reachable and not self.agent_up


@dataclass(frozen=True)
class LeaderView:
    """The ``leader`` key."""
    name: str
    term: int
    timeline: int = 0
    since: float = 0.0


@dataclass(frozen=True)
class SyncView:
    """The published synchronous standby set: every acknowledged write is on
    at least ``num`` of ``names``. ``num == 0`` or no names: asynchronous."""
    method: SyncMethod = SyncMethod.FIRST
    num: int = 0
    names: tuple[str, ...] = ()
    leader: str = ""
    term: int = 0

    @property
    def enabled(self) -> bool:
        return self.num > 0 and bool(self.names)

    @property
    def quorum(self) -> int:
        """How many members of the set must be heard before a failover picks
        (``n - k + 1``): any that many include one holding every ack."""
        return len(self.names) - self.num + 1 if self.enabled else 0

    def render(self) -> str:
        """``FIRST 1 (a, b)`` like ``SyncSpec.render``; "" when async."""
        if not self.enabled:
            return ""
        return f"{self.method.name} {self.num} ({', '.join(self.names)})"

    def same_set(self, other: SyncView | None) -> bool:
        """Same method, num and names (order-insensitive for ANY)."""
        if other is None:
            return not self.enabled
        if not self.enabled or not other.enabled:
            return self.enabled == other.enabled
        names_equal = (sorted(self.names) == sorted(other.names) if self.method is SyncMethod.ANY
                       else self.names == other.names)
        return self.method is other.method and self.num == other.num and names_equal


@dataclass(frozen=True)
class Candidate:
    """One row of a ranking (mirrors ``cluster.proto`` ``Candidate``).

    ``rank`` 1 = winner, 2.. = eligible runners-up, 0 = excluded.
    ``reason`` says why it is excluded or why it ranked where it did.
    """
    name: str
    flush_lsn: int = 0
    timeline: int = 0
    priority: int = 0
    eligible: bool = False
    rank: int = 0
    exclusion: Exclusion | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``HistoryRecord.candidates`` / the in-flight record."""
        return {"name": self.name, "flush_lsn": self.flush_lsn, "timeline": self.timeline,
                "priority": self.priority, "eligible": self.eligible, "rank": self.rank,
                "exclusion": self.exclusion.value if self.exclusion else "", "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        exc = data.get("exclusion") or ""
        return cls(name=str(data.get("name", "")), flush_lsn=int(data.get("flush_lsn", 0)),
                   timeline=int(data.get("timeline", 0)), priority=int(data.get("priority", 0)),
                   eligible=bool(data.get("eligible", False)), rank=int(data.get("rank", 0)),
                   exclusion=Exclusion(exc) if exc else None, reason=str(data.get("reason", "")))


@dataclass(frozen=True)
class Ranking:
    """Candidates best first (eligible by rank, then the excluded).

    ``winner`` is None when nobody may be promoted now; ``waiting`` then says
    why (no eligible member, sync quorum not heard, ...).
    """
    candidates: tuple[Candidate, ...] = ()
    winner: str | None = None
    waiting: str = ""

    def get(self, name: str) -> Candidate | None:
        return next((c for c in self.candidates if c.name == name), None)


@dataclass(frozen=True)
class FailoverState:
    """The in-flight failover/switchover record (``put_failover_state``).

    Saved before the risky step so that a successor orchestrator finishes the
    same operation: ``term`` is the term the winner is promoted with,
    ``attempted`` the winners whose Promote timed out (skipped on retry),
    ``phase_since`` when the current phase began (``now`` of that decision),
    ``ack_bound`` the carried ``ranking.promoted_bound`` (0 = none),
    ``forced`` the operator forced this promotion (``SwitchoverRequest.force``).
    """
    kind: OperationKind
    phase: Phase
    term: int
    old_leader: str = ""
    new_leader: str = ""
    started_at: float = 0.0
    phase_since: float = 0.0
    last_primary_lsn: int = 0
    attempted: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    reason: str = ""
    ack_bound: int = 0
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (enums as values)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif f.name == "candidates":
                value = [c.to_dict() for c in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FailoverState | None:
        """Inverse of ``to_dict``; None for an absent or unusable record."""
        if not data:
            return None
        try:
            return cls(kind=OperationKind(data["kind"]), phase=Phase(data["phase"]),
                       term=int(data["term"]), old_leader=str(data.get("old_leader", "")),
                       new_leader=str(data.get("new_leader", "")),
                       started_at=float(data.get("started_at", 0.0)),
                       phase_since=float(data.get("phase_since", 0.0)),
                       last_primary_lsn=int(data.get("last_primary_lsn", 0)),
                       attempted=tuple(str(n) for n in data.get("attempted", ())),
                       candidates=tuple(Candidate.from_dict(c) for c in data.get("candidates", ())),
                       reason=str(data.get("reason", "")), ack_bound=int(data.get("ack_bound", 0)),
                       forced=bool(data.get("forced", False)))
        except (KeyError, ValueError, TypeError):
            return None


@dataclass(frozen=True)
class ClusterSnapshot:
    """Everything ``decide`` may look at (see the module docstring)."""
    term: int = 0
    leader: LeaderView | None = None
    members: tuple[MemberView, ...] = ()
    sync: SyncView | None = None
    paused: bool = False
    switchover: SwitchoverRequest | None = None
    failover: FailoverState | None = None
    last_known_primary_lsn: int = 0
    initialized: bool = True
    last_leader: str = ""
    term_floor: int = 0
    keyspace_lost_at: float = 0.0

    def member(self, name: str) -> MemberView | None:
        return next((m for m in self.members if m.name == name), None)


@dataclass(frozen=True)
class CoreConfig:
    """The knobs of the core (from ``OrchestratorConfig`` / the ``config`` key).

    ``maximum_lag_on_failover`` in bytes behind ``last_known_primary_lsn``;
    -1 = no limit. Timeouts are seconds of the ``now`` passed to ``decide``.
    """
    maximum_lag_on_failover: int = 1024 * 1024
    synchronous_mode: bool = False
    synchronous_node_count: int = 1
    synchronous_method: SyncMethod = SyncMethod.FIRST
    fast_path: bool = True
    switchover_timeout: float = 30.0
    promote_timeout: float = 30.0
    primary_write_failure_timeout: float = 10.0   # fail over a primary whose writes fail this long; 0 = never
    reseed_wait: float = 10.0     # see ``core.reseed``
    scheduled_grace: float = 60.0  # a scheduled switchover first seen later than this past its time expires

    @classmethod
    def from_settings(cls, settings: Any) -> CoreConfig:
        """Build from any object with the same attribute names (e.g.
        ``OrchestratorConfig``); missing attributes take the defaults."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if hasattr(settings, f.name):
                kwargs[f.name] = getattr(settings, f.name)
        if isinstance(kwargs.get("synchronous_method"), str):
            kwargs["synchronous_method"] = SyncMethod(kwargs["synchronous_method"].lower())
        return cls(**kwargs)



class ActionKind(enum.Enum):
    PROMOTE = "promote"
    FOLLOW = "follow"
    REJOIN = "rejoin"
    REVOKE_LEADER_LEASE = "revoke_leader_lease"
    PUBLISH_SYNC = "publish_sync"
    RECORD_HISTORY = "record_history"
    CLEAR_SWITCHOVER = "clear_switchover"
    DEMOTE_FOR_SWITCHOVER = "demote_for_switchover"
    SAVE_FAILOVER_STATE = "save_failover_state"
    CLEAR_FAILOVER_STATE = "clear_failover_state"
    RESEED_KEYSPACE = "reseed_keyspace"
    WAIT = "wait"


@dataclass(frozen=True)
class Promote:
    """``NodeAgent.Promote(term)`` on ``member`` (it takes ``leader`` with
    expected term ``term - 1``; already leader with ``term``: ok).
    ``forced``: the operator overrode the synchronous-mode rule (logged loudly)."""
    kind: ClassVar[ActionKind] = ActionKind.PROMOTE
    member: str
    term: int
    forced: bool = False


@dataclass(frozen=True)
class Follow:
    """``NodeAgent.Follow(term, leader)``: stream from ``leader``."""
    kind: ClassVar[ActionKind] = ActionKind.FOLLOW
    member: str
    leader: str
    term: int


@dataclass(frozen=True)
class Rejoin:
    """``NodeAgent.Rejoin(term, leader)``: rewind / re-clone, then follow."""
    kind: ClassVar[ActionKind] = ActionKind.REJOIN
    member: str
    leader: str
    term: int


@dataclass(frozen=True)
class RevokeLeaderLease:
    """Fast path: ``dcs.revoke_leader_lease(expected_term)``; the DCS refuses
    it if the term moved on."""
    kind: ClassVar[ActionKind] = ActionKind.REVOKE_LEADER_LEASE
    expected_term: int
    leader: str
    reason: str


@dataclass(frozen=True)
class PublishSync:
    """Write the ``sync`` key (``SyncRecord(method.value, num, names, leader, term)``)."""
    kind: ClassVar[ActionKind] = ActionKind.PUBLISH_SYNC
    method: SyncMethod
    num: int
    names: tuple[str, ...]
    leader: str
    term: int


@dataclass(frozen=True)
class HistoryEntry:
    """``history/<term>`` with its RPO receipt (``orchestrator`` is filled in
    by the controller). ``bytes_possibly_lost = max(0, last_primary_lsn -
    promoted_lsn)``; ``started_at``/``finished_at`` are the core's ``now``."""
    term: int
    kind: OperationKind
    old_leader: str
    new_leader: str
    last_primary_lsn: int
    promoted_lsn: int
    bytes_possibly_lost: int
    started_at: float
    finished_at: float
    candidates: tuple[Candidate, ...]
    reason: str
    timeline: int = 0


@dataclass(frozen=True)
class RecordHistory:
    """Put ``history/<entry.term>`` (same key each time: idempotent)."""
    kind: ClassVar[ActionKind] = ActionKind.RECORD_HISTORY
    entry: HistoryEntry


@dataclass(frozen=True)
class ClearSwitchover:
    """Delete the ``switchover`` request (done or impossible); ``outcome`` and
    ``reason`` are recorded for the operator who asked (``walrus ctl`` waits
    for them)."""
    kind: ClassVar[ActionKind] = ActionKind.CLEAR_SWITCHOVER
    reason: str = ""
    outcome: RequestOutcome = RequestOutcome.REFUSED


@dataclass(frozen=True)
class DemoteForSwitchover:
    """``NodeAgent.Demote(term)`` on the current leader: it fences, releases
    the leader key (term unchanged) and becomes a read-only standby."""
    kind: ClassVar[ActionKind] = ActionKind.DEMOTE_FOR_SWITCHOVER
    member: str
    term: int


@dataclass(frozen=True)
class SaveFailoverState:
    """``dcs.put_failover_state(state.to_dict())`` before the next step."""
    kind: ClassVar[ActionKind] = ActionKind.SAVE_FAILOVER_STATE
    state: FailoverState


@dataclass(frozen=True)
class ClearFailoverState:
    """``dcs.clear_failover_state()``: the operation is finished."""
    kind: ClassVar[ActionKind] = ActionKind.CLEAR_FAILOVER_STATE


@dataclass(frozen=True)
class Wait:
    """Nothing to do now; the reason is logged."""
    kind: ClassVar[ActionKind] = ActionKind.WAIT
    reason: str


Action = (Promote | Follow | Rejoin | RevokeLeaderLease | PublishSync | RecordHistory
          | ClearSwitchover | DemoteForSwitchover | SaveFailoverState | ClearFailoverState | Wait)


@dataclass(frozen=True)
class Decision:
    """What to do now; ``transition`` is None when the state did not change."""
    state: State
    actions: tuple[Action, ...] = ()
    reason: str = ""
    ranking: Ranking | None = None
    transition: Transition | None = None

    def of_kind(self, kind: ActionKind) -> tuple[Action, ...]:
        """The actions of one kind, in order."""
        return tuple(a for a in self.actions if a.kind is kind)
