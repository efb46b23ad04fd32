"""Safety invariants of ``decide`` over random snapshots (hypothesis).

The oracle below re-derives eligibility from the members directly, so a bug
in ``ranking`` cannot hide a bug in ``decide``.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_strategies import NOW, configs, snapshots
from walrus_ha.orchestrator.core import (
    ActionKind,
    ClusterSnapshot,
    CoreConfig,
    DemoteForSwitchover,
    Exclusion,
    Follow,
    InvalidTransition,
    MemberView,
    Promote,
    PublishSync,
    Rejoin,
    RevokeLeaderLease,
    Role,
    State,
    decide,
)
from walrus_ha.orchestrator.core.ranking import promoted_bound

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reference(snap: ClusterSnapshot) -> int:
    known = max(snap.last_known_primary_lsn, snap.failover.last_primary_lsn if snap.failover else 0)
    return known or max((m.flush_lsn for m in snap.members), default=0)


def oracle_eligible(m: MemberView, snap: ClusterSnapshot, cfg: CoreConfig) -> bool:
    """May ``m`` be promoted at all (ignoring earlier failed attempts)?"""
    if m.nofailover or not m.reachable or not m.has_member_key or m.needs_reclone:
        return False
    if m.role not in (Role.PRIMARY, Role.STANDBY):
        return False
    if cfg.synchronous_mode:
        s = snap.sync
        set_leader = m.name == s.leader and s.term == snap.term if s is not None else False
        bound = promoted_bound(snap)   # the dead-new-leader case (see ranking.promoted_bound)
        covered = bound is not None and m.flush_lsn >= bound
        if s is None or not s.enabled or (m.name not in s.names and not set_leader and not covered):
            return False
    lag = _reference(snap) - m.flush_lsn
    return cfg.maximum_lag_on_failover < 0 or lag <= cfg.maximum_lag_on_failover


def _promotes(d) -> list[Promote]:
    return [a for a in d.actions if isinstance(a, Promote)]


@SETTINGS
@given(snapshots(), configs)
def test_at_most_one_promote_and_always_a_new_term(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    promotes = _promotes(d)
    assert len(promotes) <= 1
    for p in promotes:
        assert p.term == snap.term + 1 > snap.term
        assert snap.leader is None, "never promote while a leader key exists"


@SETTINGS
@given(snapshots(), configs)
def test_promotes_the_most_advanced_eligible_member(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    for p in _promotes(d):
        winner = snap.member(p.member)
        assert winner is not None and oracle_eligible(winner, snap, cfg)
        skipped = {c.name for c in d.ranking.candidates if c.exclusion is Exclusion.PROMOTE_FAILED}
        for q in snap.members:
            if q.name not in skipped and oracle_eligible(q, snap, cfg):
                assert (q.timeline, q.flush_lsn) <= (winner.timeline, winner.flush_lsn), (q, winner)


@SETTINGS
@given(snapshots(), configs.map(lambda c: CoreConfig(**{**c.__dict__, "synchronous_mode": True})))
def test_sync_mode_promotes_only_inside_the_set_with_a_quorum(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    for p in _promotes(d):
        s = snap.sync
        bound = promoted_bound(snap)
        if bound is not None and snap.member(p.member).flush_lsn >= bound:
            continue  # holds every acknowledged write by promoted_bound's argument
        assert s is not None and s.enabled and (p.member in s.names or p.member == s.leader)
        set_leader = snap.member(s.leader) if s.term == snap.term else None
        winner = snap.member(p.member)
        if set_leader is not None and oracle_eligible(set_leader, snap, cfg) and \
                (winner.timeline, winner.flush_lsn) >= (set_leader.timeline, set_leader.flush_lsn):
            continue  # the set's own leader acknowledged every write itself, and the winner flushed as far
        if not (p.member == s.leader and s.term == snap.term):
            heard = [n for n in s.names if (m := snap.member(n)) is not None and oracle_eligible(m, snap, cfg)]
            assert len(heard) >= len(s.names) - s.num + 1


@SETTINGS
@given(snapshots(), configs)
def test_paused_means_no_automatic_action(snap, cfg) -> None:
    from dataclasses import replace
    d = decide(replace(snap, paused=True), cfg, NOW)
    assert d.state is State.PAUSED
    assert [a.kind for a in d.actions] == [ActionKind.WAIT]


@SETTINGS
@given(snapshots(), configs)
def test_fast_path_only_for_a_provably_dead_leader(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    for r in (a for a in d.actions if isinstance(a, RevokeLeaderLease)):
        assert cfg.fast_path and snap.leader is not None and r.expected_term == snap.leader.term
        lm = snap.member(snap.leader.name)
        assert lm is not None and not lm.reachable and not lm.agent_up, "a timeout never takes the fast path"
        standbys = [m for m in snap.members if m.name != lm.name and m.reachable and m.role is Role.STANDBY]
        assert standbys and not any(m.streaming for m in standbys)


@SETTINGS
@given(snapshots(), configs)
def test_orders_go_to_reachable_members_with_the_current_term(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    for a in d.actions:
        if isinstance(a, (Follow, Rejoin)):
            assert snap.leader is not None and (a.leader, a.term) == (snap.leader.name, snap.leader.term)
            m = snap.member(a.member)
            assert m is not None and m.reachable and a.member != snap.leader.name
        if isinstance(a, DemoteForSwitchover):
            assert snap.leader is not None and (a.member, a.term) == (snap.leader.name, snap.leader.term)
        if isinstance(a, PublishSync):
            assert snap.leader is not None and (a.leader, a.term) == (snap.leader.name, snap.leader.term)
            assert a.leader not in a.names and 0 <= a.num <= len(a.names)


@SETTINGS
@given(snapshots(), configs)
def test_sync_set_changes_never_drop_an_acknowledged_write(snap, cfg) -> None:
    d = decide(snap, cfg, NOW)
    cur, leader = snap.sync, snap.leader
    for a in (x for x in d.actions if isinstance(x, PublishSync)):
        if cur is None or not cur.enabled or (cur.leader, cur.term) != (leader.name, leader.term):
            continue  # new term: the leader itself holds every acknowledged write
        if not a.num:
            continue  # async: no failover is allowed in synchronous mode any more
        removed = set(cur.names) - set(a.names)
        if cur.num - len(removed) >= a.num:
            continue  # every k_old-subset of the old set keeps num members in the new one
        lm = snap.member(leader.name)
        flushes = sorted((m.flush_lsn for m in snap.members if m.name in a.names and m.reachable), reverse=True)
        assert len(flushes) >= a.num and flushes[a.num - 1] >= lm.flush_lsn


@SETTINGS
@given(snapshots(), configs, st.sampled_from(list(State)))
def test_transitions_follow_the_table(snap, cfg, previous) -> None:
    try:
        d = decide(snap, cfg, NOW, previous=previous)
    except InvalidTransition:
        # Only a term that went back to 0 (etcd lost its data) is refused.
        assert decide(snap, cfg, NOW).state is State.BOOTSTRAPPING
        assert previous not in (State.STARTING, State.PAUSED, State.NO_CANDIDATE)
        return
    assert d.actions and d.reason
    assert (d.transition is None) == (d.state is previous)


@SETTINGS
@given(snapshots(), configs)
def test_repeating_a_decision_is_stable(snap, cfg) -> None:
    assert decide(snap, cfg, NOW) == decide(snap, cfg, NOW)
