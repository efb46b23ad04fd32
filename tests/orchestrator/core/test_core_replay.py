"""Replay failovers and switchovers through a tiny in-memory cluster, with the
orchestrator crashing after every possible action (a successor with no memory
takes over) and with every action executed twice. The outcome must be the
same: one leader, one new term, one history record, everyone following.

The simulated cluster is a pure model of the agents + etcd semantics the core
relies on (create-if-absent leader key bound to ``term + 1``, idempotent
agent RPCs); it is a fake on purpose: this tests pure logic.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from core_builders import primary, standby
from walrus_ha.orchestrator.core import (
    ClearFailoverState,
    ClearSwitchover,
    ClusterSnapshot,
    CoreConfig,
    DemoteForSwitchover,
    FailoverState,
    Follow,
    HistoryEntry,
    LeaderView,
    MemberView,
    OperationKind,
    Promote,
    PublishSync,
    RecordHistory,
    Rejoin,
    RevokeLeaderLease,
    Role,
    SaveFailoverState,
    State,
    SwitchoverRequest,
    SyncView,
    Wait,
    decide,
)


class Refused(Exception):
    """The simulated agent/etcd refused an action (stale term, unreachable)."""


@dataclass
class Sim:
    members: dict[str, MemberView]
    term: int = 1
    leader: LeaderView | None = None
    sync: SyncView | None = None
    switchover: SwitchoverRequest | None = None
    failover: FailoverState | None = None
    history: dict[int, HistoryEntry] = field(default_factory=dict)
    won: list[tuple[str, int]] = field(default_factory=list)
    last_known_primary_lsn: int = 0     # orchestrator memory: lost on a crash
    last_leader: str = ""               # orchestrator memory: lost on a crash

    def snapshot(self) -> ClusterSnapshot:
        return ClusterSnapshot(term=self.term, leader=self.leader, members=tuple(self.members.values()),
                               sync=self.sync, switchover=self.switchover, failover=self.failover,
                               last_known_primary_lsn=self.last_known_primary_lsn, last_leader=self.last_leader)

    def observe(self) -> None:
        """What a controller remembers between loops."""
        if self.leader is not None:
            self.last_leader = self.leader.name
            lm = self.members.get(self.leader.name)
            if lm is not None and lm.reachable:
                self.last_known_primary_lsn = max(self.last_known_primary_lsn, lm.flush_lsn)

    def _agent(self, name: str) -> MemberView:
        m = self.members[name]
        if not m.reachable:
            raise Refused(f"{name} unreachable")
        return m

    def apply(self, a) -> None:  # noqa: C901 - one branch per action kind, flat on purpose
        if isinstance(a, SaveFailoverState):
            self.failover = a.state
        elif isinstance(a, ClearFailoverState):
            self.failover = None
        elif isinstance(a, ClearSwitchover):
            self.switchover = None
        elif isinstance(a, RecordHistory):
            self.history[a.entry.term] = a.entry
        elif isinstance(a, PublishSync):
            self.sync = SyncView(a.method, a.num, a.names, a.leader, a.term)
        elif isinstance(a, RevokeLeaderLease):
            if self.leader is not None and self.term == a.expected_term:
                self.leader = None
        elif isinstance(a, Promote):
            self._promote(a)
        elif isinstance(a, DemoteForSwitchover):
            self._demote(a)
        elif isinstance(a, (Follow, Rejoin)):
            self._follow(a)
        elif not isinstance(a, Wait):
            raise AssertionError(f"unknown action {a}")

    def _promote(self, a: Promote) -> None:
        m = self._agent(a.member)
        if self.leader is not None and (self.leader.name, self.leader.term) == (a.member, a.term):
            return  # already done: idempotent
        if self.leader is not None or a.term != self.term + 1:
            raise Refused("leader key exists or stale term")
        self.term = a.term
        self.leader = LeaderView(a.member, a.term, m.timeline + 1)
        self.members[a.member] = replace(m, role=Role.PRIMARY, timeline=m.timeline + 1, term=a.term,
                                         upstream="", streaming=False, fenced=False)
        self.won.append((a.member, a.term))

    def _demote(self, a: DemoteForSwitchover) -> None:
        m = self._agent(a.member)
        if self.leader is not None and (self.leader.name, self.leader.term) == (a.member, a.term):
            self.leader = None
            for n, s in self.members.items():  # the WAL sender drains to connected standbys
                if s.streaming and s.upstream_name == a.member:
                    self.members[n] = replace(s, flush_lsn=m.flush_lsn)
        self.members[a.member] = replace(m, role=Role.STANDBY, upstream="", streaming=False)

    def _follow(self, a) -> None:
        m = self._agent(a.member)
        if self.leader is None or (self.leader.name, self.leader.term) != (a.leader, a.term):
            raise Refused("stale term")
        lm = self.members[a.leader]
        self.members[a.member] = replace(m, role=Role.STANDBY, upstream=a.leader, streaming=True,
                                         timeline=lm.timeline, term=a.term, fenced=False,
                                         flush_lsn=min(m.flush_lsn, lm.flush_lsn) if isinstance(a, Rejoin)
                                         else m.flush_lsn)


def run(sim: Sim, cfg: CoreConfig, crash_after: int | None = None, twice: bool = False) -> list[State]:
    """Loop decide -> execute until quiet (HEALTHY or DEGRADED); crash once after
    ``crash_after`` executed actions (the successor starts from scratch)."""
    now, previous, executed, states = 1000.0, State.STARTING, 0, []
    for _ in range(30):
        sim.observe()
        d = decide(sim.snapshot(), cfg, now, previous=previous)
        previous = d.state
        states.append(d.state)
        if d.state in (State.HEALTHY, State.DEGRADED) and all(isinstance(a, Wait) for a in d.actions):
            return states
        for a in d.actions:
            if crash_after is not None and executed == crash_after:
                crash_after, previous = None, State.STARTING
                sim.last_known_primary_lsn, sim.last_leader = 0, ""
                break
            try:
                sim.apply(a)
                if twice:
                    sim.apply(a)
            except Refused:
                break
            executed += 1
        now += 1.0
    raise AssertionError(f"did not settle: {states}")


def dead_primary_cluster() -> Sim:
    ms = [replace(primary("a"), reachable=False, agent_up=False),
          standby("b", flush_lsn=990, streaming=False), standby("c", flush_lsn=995, streaming=False)]
    return Sim({m.name: m for m in ms}, term=1, leader=LeaderView("a", 1, 1),
               last_known_primary_lsn=1000, last_leader="a")


def switchover_cluster() -> Sim:
    ms = [primary("a"), standby("b", flush_lsn=990), standby("c", flush_lsn=980)]
    return Sim({m.name: m for m in ms}, term=1, leader=LeaderView("a", 1, 1),
               switchover=SwitchoverRequest("c", "a"))


def check_settled(sim: Sim, winner: str, kind: OperationKind, term: int = 2) -> None:
    assert sim.leader is not None and (sim.leader.name, sim.leader.term) == (winner, term)
    assert sim.won == [(winner, term)], "exactly one promote won, with one new term"
    assert sim.failover is None and sim.switchover is None
    assert list(sim.history) == [term] and sim.history[term].new_leader == winner
    assert sim.history[term].kind is kind
    for m in sim.members.values():
        if m.reachable and m.name != winner:
            assert (m.role, m.upstream_name, m.streaming) == (Role.STANDBY, winner, True), m


FAILOVER_STEPS = 7   # revoke, save, promote, rejoin b, history, clear failover (+ slack)
SWITCHOVER_STEPS = 10


@pytest.mark.parametrize("crash_after", [None] + list(range(FAILOVER_STEPS)))
@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
def test_failover_survives_a_crash_anywhere(crash_after, twice) -> None:
    sim = dead_primary_cluster()
    run(sim, CoreConfig(), crash_after, twice)
    check_settled(sim, "c", OperationKind.FAILOVER)
    entry = sim.history[2]
    assert entry.promoted_lsn == 995
    if crash_after is None:
        assert (entry.last_primary_lsn, entry.bytes_possibly_lost, entry.old_leader) == (1000, 5, "a")


@pytest.mark.parametrize("crash_after", [None] + list(range(SWITCHOVER_STEPS)))
@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
def test_switchover_survives_a_crash_anywhere(crash_after, twice) -> None:
    sim = switchover_cluster()
    run(sim, CoreConfig(), crash_after, twice)
    check_settled(sim, "c", OperationKind.SWITCHOVER)
    assert sim.history[2].bytes_possibly_lost == 0 and sim.history[2].old_leader == "a"


def test_sync_failover_publishes_then_promotes_inside_the_set() -> None:
    cfg = CoreConfig(synchronous_mode=True)
    ms = [primary("a"), standby("b", flush_lsn=990), standby("c", flush_lsn=1000)]
    sim = Sim({m.name: m for m in ms}, term=1, leader=LeaderView("a", 1, 1))
    run(sim, cfg)
    assert sim.sync is not None and sim.sync.names == ("c",)
    # b races ahead of the sync standby (async writes), then the primary dies.
    sim.members["b"] = replace(sim.members["b"], flush_lsn=1500, streaming=False)
    sim.members["c"] = replace(sim.members["c"], streaming=False)
    sim.members["a"] = replace(sim.members["a"], reachable=False, agent_up=False)
    run(sim, cfg)
    assert sim.leader.name == "c" and sim.won == [("c", 2)]
    assert sim.sync.leader == "c" and sim.sync.names == ("b",)
