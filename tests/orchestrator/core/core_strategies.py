"""Hypothesis strategies: random (often absurd) cluster snapshots and configs."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from walrus_ha.orchestrator.core import (
    Candidate,
    ClusterSnapshot,
    CoreConfig,
    FailoverState,
    LeaderView,
    MemberView,
    OperationKind,
    Phase,
    Role,
    SwitchoverRequest,
    SyncMethod,
    SyncView,
)

NAMES = ("a", "b", "c", "d", "e")
NOW = 1000.0

_contact = st.sampled_from([(True, True)] * 4 + [(False, True), (False, False)])
_roles = st.sampled_from([Role.STANDBY] * 4 + [Role.PRIMARY, Role.STOPPED, Role.UNKNOWN])
_rarely = st.sampled_from([False] * 5 + [True])
_often = st.sampled_from([True, True, False])
_lsn = st.one_of(st.integers(16, 20), st.integers(0, 20)).map(lambda x: x * 50)


@st.composite
def members(draw, name: str) -> MemberView:
    reachable, agent_up = draw(_contact)
    return MemberView(
        name=name, reachable=reachable, agent_up=agent_up,
        role=draw(_roles), timeline=draw(st.integers(1, 3) | st.just(0)), term=draw(st.integers(0, 6)),
        flush_lsn=draw(_lsn), replay_lsn=0,
        streaming=draw(_often), upstream=draw(st.sampled_from(("",) + NAMES)),
        fenced=draw(_rarely), needs_reclone=draw(_rarely),
        nofailover=draw(_rarely), priority=draw(st.integers(0, 2)),
        has_member_key=not draw(_rarely))


@st.composite
def snapshots(draw) -> ClusterSnapshot:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    ms = [draw(members(n)) for n in names]
    term = draw(st.integers(0, 6))
    leader = None
    if draw(st.booleans()):
        leader = LeaderView(draw(st.sampled_from(names + ["z"])), draw(st.integers(0, term)),
                            draw(st.integers(0, 3)))
        for i, m in enumerate(ms):
            if m.name == leader.name and draw(_often):  # usually the leader really is a primary
                ms[i] = replace(m, role=Role.PRIMARY, timeline=leader.timeline, streaming=False, upstream="")
            elif leader.name in names and draw(_often):  # and its standbys follow it
                ms[i] = replace(m, upstream=leader.name, timeline=leader.timeline)
    ms = tuple(ms)
    sync = None
    if draw(st.booleans()):
        pool = st.sampled_from(names) if names and draw(_often) else st.sampled_from(NAMES)
        sync_names = tuple(draw(st.lists(pool, unique=True, max_size=4)))
        sync = SyncView(draw(st.sampled_from(list(SyncMethod))), draw(st.integers(0, len(sync_names))),
                        sync_names, draw(st.sampled_from(("",) + NAMES)), draw(st.integers(0, term)))
    failover = None
    if draw(st.sampled_from([True, False, False])):
        since = draw(st.sampled_from([NOW - 1, NOW - 100]))
        failover = FailoverState(
            kind=draw(st.sampled_from(list(OperationKind))), phase=draw(st.sampled_from(list(Phase))),
            term=draw(st.integers(1, term + 2)), old_leader=draw(st.sampled_from(NAMES)),
            new_leader=draw(st.sampled_from(("",) + NAMES)), started_at=since, phase_since=since,
            last_primary_lsn=draw(st.integers(0, 1000)),
            attempted=tuple(draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))),
            candidates=tuple(Candidate(n, draw(_lsn), 1, 0, True, 1) for n in draw(st.sampled_from([(), NAMES]))),
            ack_bound=draw(st.sampled_from([0, 0, 500, 900])))
    switchover = None
    if draw(st.sampled_from([True, False, False, False])):
        switchover = SwitchoverRequest(draw(st.sampled_from(("",) + NAMES)), draw(st.sampled_from(("",) + NAMES)),
                                       0.0, draw(st.booleans()))
    return ClusterSnapshot(term=term, leader=leader, members=ms, sync=sync, paused=draw(_rarely),
                           switchover=switchover, failover=failover,
                           last_known_primary_lsn=draw(st.integers(0, 1000)),
                           last_leader=draw(st.sampled_from(("",) + NAMES)))


configs = st.builds(
    CoreConfig,
    maximum_lag_on_failover=st.sampled_from([-1, 0, 100, 1024 * 1024]),
    synchronous_mode=st.booleans(),
    synchronous_node_count=st.integers(1, 3),
    synchronous_method=st.sampled_from(list(SyncMethod)),
    fast_path=st.booleans(),
    switchover_timeout=st.just(30.0),
    promote_timeout=st.just(30.0),
)
