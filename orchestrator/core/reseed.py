"""etcd lost its data while the members kept theirs: re-seed the keyspace.

The one rule: an emptied keyspace (no ``term``, no ``leader``, while members
report terms they have seen) is re-seeded only from what the members report:
``term`` = the highest term any member reports or this orchestrator saw
(never lower), and ``initialize`` = the member that will lead, chosen so that
no acknowledged write is lost:

* synchronous mode: the last primary (the member whose data says primary at
  the highest term and timeline) must answer; every acknowledged write is in
  its WAL, and the winner is a member that flushed at least as far. Without
  it nobody provably holds every acknowledged write: wait, unless an
  operator's failover request names a candidate (an explicit override).
* asynchronous mode: the most advanced reachable member, once the last
  primary answers, or after ``reseed_wait`` without it (or at once on an
  operator's failover request).

The next decision sees ``term`` again and promotes through the ordinary
leaderless path at ``term + 1``. Pure: no I/O, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from walrus_ha.orchestrator.core.model import (
    Action,
    ActionKind,
    ClusterSnapshot,
    CoreConfig,
    FailoverState,
    MemberView,
    OperationKind,
    Phase,
    Ranking,
    Role,
    SaveFailoverState,
)
from walrus_ha.orchestrator.core.ranking import rank, reference_lsn
from walrus_ha.orchestrator.core.states import State


@dataclass(frozen=True)
class ReseedKeyspace:
    """etcd lost its data: put ``term`` = ``term`` and ``initialize`` =
    ``initialize`` in one transaction that requires ``term`` and ``leader``
    absent; in synchronous mode also a ``sync`` record naming ``initialize``
    as the set's leader at ``term`` (``sync_leader``; "" = no sync record),
    so that only that member may be promoted and, once promoted, it
    acknowledges nothing until its own set is published."""
    kind: ClassVar[ActionKind] = ActionKind.RESEED_KEYSPACE
    term: int
    initialize: str
    sync_leader: str = ""
    reason: str = ""


_Step = tuple[State, list[Action], str, Ranking | None]


def seen_term(m: MemberView) -> int:
    """The highest term ``m`` has seen (its engine's, or a later one etcd showed it)."""
    return max(m.term, m.highest_term)


def keyspace_lost(snapshot: ClusterSnapshot) -> bool:
    """etcd has no ``term`` and no ``leader`` while a member reports a term or
    the controller saw one before: etcd lost its data (a fresh cluster's
    members report term 0)."""
    return snapshot.term == 0 and snapshot.leader is None and (
        snapshot.term_floor > 0 or any(seen_term(m) > 0 for m in snapshot.members))


def reseed_term(snapshot: ClusterSnapshot) -> int:
    """The term to re-seed with: the highest any member reports or the
    controller saw in etcd before it was emptied."""
    return max([snapshot.term_floor] + [seen_term(m) for m in snapshot.members])


def last_primary(snapshot: ClusterSnapshot) -> MemberView | None:
    """The member whose data says primary at a term and timeline no other
    member has passed (its WAL holds every write it acknowledged), or None."""
    primaries = [m for m in snapshot.members if m.role is Role.PRIMARY]
    if not primaries:
        return None
    best = max(primaries, key=lambda m: (seen_term(m), m.timeline, m.flush_lsn))
    newest = max((m.term, m.timeline) for m in snapshot.members)
    return best if (seen_term(best), best.timeline) >= newest else None


def _override(snapshot: ClusterSnapshot) -> str:
    """The candidate of a pending operator failover request, or ""."""
    req = snapshot.switchover
    return req.candidate if req is not None and req.failover and req.candidate else ""


def reseed_step(snapshot: ClusterSnapshot, config: CoreConfig, now: float) -> _Step:
    """The decision while the keyspace is lost (see the module rule)."""
    term = reseed_term(snapshot)
    ranking = rank(snapshot, replace(config, synchronous_mode=False))
    lp = last_primary(snapshot)
    here = lp is not None and lp.reachable and lp.has_member_key
    forced = _override(snapshot)
    lost = f"etcd lost its data (no term key; members have seen term {term})"
    if forced:
        c = ranking.get(forced)
        if c is None or not c.eligible:
            why = c.reason if c is not None else "not a member"
            return State.RESEEDING, [], f"{lost}: failover candidate {forced} cannot lead ({why})", ranking
        winner, why = forced, f"operator failover request names {forced}"
    elif ranking.winner is None:
        return State.RESEEDING, [], f"{lost}: no member can lead ({ranking.waiting})", ranking
    elif not here:
        who = lp.name if lp is not None else "unknown (no member reports primary data at the newest term)"
        if config.synchronous_mode:
            return State.RESEEDING, [], (f"{lost}; synchronous mode: waiting for the last primary ({who}), the "
                                         "only member known to hold every acknowledged write (a failover request "
                                         "naming a candidate overrides)"), ranking
        waited = now - snapshot.keyspace_lost_at if snapshot.keyspace_lost_at else 0.0
        if waited < config.reseed_wait:
            return State.RESEEDING, [], (f"{lost}; waiting up to {config.reseed_wait:g}s for the last primary "
                                         f"({who}), {waited:.1f}s so far"), ranking
        winner, why = ranking.winner, f"the last primary ({who}) did not come back within {config.reseed_wait:g}s"
    else:
        assert lp is not None                     # ``here``
        winner, why = ranking.winner, f"the last primary {lp.name} answers"
        best, own = ranking.get(winner), ranking.get(lp.name)
        assert best is not None                   # the ranking's winner is ranked
        if own is not None and own.eligible and (own.timeline, own.flush_lsn) >= (best.timeline, best.flush_lsn):
            winner = lp.name        # on a tie the last primary keeps leading: nobody has to rejoin
        if config.synchronous_mode and (best.timeline, best.flush_lsn) < (lp.timeline, lp.flush_lsn):
            return State.RESEEDING, [], (f"{lost}; synchronous mode: no eligible member flushed as far as the "
                                         f"last primary {lp.name} ({lp.flush_lsn})"), ranking
    reason = f"{lost}: re-seeding term {term} for {winner} ({why})"
    sync_leader = winner if config.synchronous_mode else ""
    # The in-flight record names the failover's old leader and reason for its history record.
    fs = FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=term + 1,
                       old_leader=lp.name if lp is not None else snapshot.last_leader, new_leader=winner,
                       started_at=now, phase_since=now,
                       last_primary_lsn=lp.flush_lsn if lp is not None else reference_lsn(snapshot),
                       candidates=ranking.candidates, reason=reason)
    # ReseedKeyspace is not in model's Action union (model cannot import this module).
    return State.RESEEDING, [ReseedKeyspace(term, winner, sync_leader, reason),  # type: ignore[list-item]
                             SaveFailoverState(fs)], reason, ranking
