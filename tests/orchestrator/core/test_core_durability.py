"""Synchronous mode loses no acknowledged write: a random walk of writes,
replication, crashes, hangs, lease expiries, switchover requests and
orchestrator loops (some cut short by an orchestrator crash) over the pure
cluster model of ``test_core_replay``. Whenever a member wins a promote, it
holds every write the primary acknowledged under a published sync set.
"""
from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from core_builders import primary, standby
from test_core_replay import Refused, Sim
from walrus_ha.orchestrator.core import (
    CoreConfig,
    LeaderView,
    Promote,
    Role,
    State,
    SwitchoverRequest,
    SyncMethod,
    decide,
)

NAMES = ("a", "b", "c", "d")
names = st.sampled_from(NAMES)


class SyncCluster(RuleBasedStateMachine):
    @initialize(count=st.integers(1, 2), method=st.sampled_from(list(SyncMethod)))
    def start(self, count: int, method: SyncMethod) -> None:
        ms = [primary("a", flush_lsn=0)] + [standby(n, flush_lsn=0) for n in NAMES[1:]]
        self.sim = Sim({m.name: m for m in ms}, term=1, leader=LeaderView("a", 1, 1))
        self.cfg = CoreConfig(synchronous_mode=True, synchronous_node_count=count, synchronous_method=method,
                              maximum_lag_on_failover=-1)
        self.acked = 0
        self.now = 1000.0
        self.previous = State.STARTING
        self.promotions: list[tuple[str, int, int]] = []   # (member, its flush, acked at that moment)

    # -------------------------------------------------------------- the data path
    def _writer(self):
        """The member that may acknowledge writes: holds the key, alive, unfenced primary."""
        leader = self.sim.leader
        m = self.sim.members.get(leader.name) if leader else None
        if m is None or not m.agent_up or m.role is not Role.PRIMARY or m.fenced:
            return None
        return m

    def _ack(self) -> None:
        """Acknowledge what ``num`` members of the leader's own published set flushed."""
        w, s = self._writer(), self.sim.sync
        leader = self.sim.leader
        if w is None or s is None or not s.enabled or (s.leader, s.term) != (leader.name, leader.term):
            return
        flushes = sorted((self.sim.members[n].flush_lsn for n in s.names if n in self.sim.members), reverse=True)
        if len(flushes) >= s.num:
            self.acked = max(self.acked, min(flushes[s.num - 1], w.flush_lsn))

    @rule(amount=st.integers(1, 100), shipped=st.lists(st.sampled_from([0, 0, 10, 60, 200]), min_size=4, max_size=4))
    def traffic(self, amount: int, shipped: list[int]) -> None:
        """The primary writes ``amount`` bytes; each live streaming follower
        receives up to ``shipped[i]`` more bytes (it may lag)."""
        w = self._writer()
        if w is None:
            return
        self.sim.members[w.name] = w = replace(w, flush_lsn=w.flush_lsn + amount)
        for name, more in zip(NAMES, shipped):
            m = self.sim.members[name]
            if m.agent_up and m.streaming and m.upstream_name == w.name and name != w.name:
                self.sim.members[name] = replace(m, flush_lsn=min(w.flush_lsn, m.flush_lsn + more))
            self._ack()

    # -------------------------------------------------------------- failures
    @rule(name=names, dead=st.booleans())
    def fail(self, name: str, dead: bool) -> None:
        m = self.sim.members[name]
        self.sim.members[name] = replace(m, reachable=False, agent_up=not dead, streaming=m.streaming and not dead)
        if dead:
            for n, s in self.sim.members.items():
                if s.upstream_name == name:
                    self.sim.members[n] = replace(s, streaming=False)

    @rule(name=names)
    def revive(self, name: str) -> None:
        m = self.sim.members[name]
        holds_key = self.sim.leader is not None and self.sim.leader.name == name
        self.sim.members[name] = replace(m, reachable=True, agent_up=True,
                                         fenced=m.fenced or (m.role is Role.PRIMARY and not holds_key))

    @rule(dead=st.booleans(), expire=st.booleans())
    def leader_fails(self, dead: bool, expire: bool = False) -> None:
        if self.sim.leader is not None:
            self.fail(self.sim.leader.name, dead)
            if expire:
                self.lease_expires()

    @rule()
    def lease_expires(self) -> None:
        leader = self.sim.leader
        m = self.sim.members.get(leader.name) if leader else None
        if m is not None and not m.reachable:   # dead, or partitioned from etcd as well
            self.sim.leader = None
            self.sim.members[m.name] = replace(m, fenced=True)

    @rule(candidate=names)
    def request_switchover(self, candidate: str) -> None:
        self.sim.switchover = SwitchoverRequest(candidate)

    @rule(seconds=st.sampled_from([1.0, 1.0, 40.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    # -------------------------------------------------------------- the orchestrator
    @rule(crash_after=st.none() | st.integers(0, 4), loops=st.sampled_from([1, 3]))
    def orchestrate(self, crash_after, loops: int = 1) -> None:
        for _ in range(loops - 1):
            self._loop(None)
        self._loop(crash_after)

    def _loop(self, crash_after) -> None:
        self.sim.observe()
        d = decide(self.sim.snapshot(), self.cfg, self.now, previous=self.previous)
        self.previous = d.state
        for i, a in enumerate(d.actions):
            if crash_after is not None and i == crash_after:
                self.previous = State.STARTING
                self.sim.last_known_primary_lsn, self.sim.last_leader = 0, ""
                break
            if isinstance(a, Promote):
                m = self.sim.members[a.member]
                self.promotions.append((a.member, m.flush_lsn, self.acked))
            try:
                self.sim.apply(a)
            except Refused:
                break
            self._ack()
        self.now += 1.0

    @rule(crash_after=st.none() | st.integers(0, 4), loops=st.sampled_from([1, 3]))
    def orchestrate_again(self, crash_after, loops: int) -> None:
        self.orchestrate(crash_after, loops)

    @invariant()
    def promoted_members_hold_every_acknowledged_write(self) -> None:
        for member, flush, acked in getattr(self, "promotions", ()):
            assert flush >= acked, f"{member} promoted at {flush} but {acked} was acknowledged"

    @invariant()
    def one_winner_per_term(self) -> None:
        sim = getattr(self, "sim", None)
        if sim is not None:
            terms = [t for _, t in sim.won]
            assert terms == sorted(set(terms))


SyncCluster.TestCase.settings = settings(max_examples=600, stateful_step_count=50, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_sync_mode_keeps_acknowledged_writes = SyncCluster.TestCase


def test_losing_a_sync_standby_does_not_hand_its_writes_to_a_laggard() -> None:
    """The walk the random search must be able to find: b (sync) acked 100,
    c lags at 10; b dies; the set must not become ``FIRST 1 (c)`` before c
    caught up, so the primary's death cannot promote c."""
    m = SyncCluster()
    m.start(1, SyncMethod.FIRST)
    m.orchestrate(None)
    m.traffic(100, [0, 100, 10, 10])
    assert m.acked == 100
    m.fail("b", True)
    m.orchestrate(None)
    m.orchestrate(None)
    assert m.sim.sync.names == ("b", "c")
    m.leader_fails(True)
    m.lease_expires()
    m.orchestrate(None)
    m.orchestrate(None)
    m.promoted_members_hold_every_acknowledged_write()
    assert m.sim.won == []   # b is needed (quorum 2 of {b, c}): wait for it
    m.revive("b")
    m.orchestrate(None)
    assert m.sim.won == [("b", 2)]
    m.promoted_members_hold_every_acknowledged_write()


def test_any_quorum_waits_for_enough_of_the_set() -> None:
    """ANY 1 (b, c, d): b alone acked 100; with b dead the others (at 10)
    are not enough to know every acknowledged write, so nobody is promoted."""
    m = SyncCluster()
    m.start(1, SyncMethod.ANY)
    m.orchestrate(None)
    assert m.sim.sync.names == ("b", "c", "d") and m.sim.sync.num == 1
    m.traffic(100, [0, 100, 10, 10])
    assert m.acked == 100
    m.fail("b", True)
    m.leader_fails(True, expire=True)
    m.orchestrate(None, loops=3)
    assert m.sim.won == []
    m.revive("b")
    m.orchestrate(None)
    assert m.sim.won == [("b", 2)]
    m.promoted_members_hold_every_acknowledged_write()


def test_bound_beats_a_newer_timeline_when_the_set_is_not_heard() -> None:
    """Found by the random walk: ANY 1 (b, c, d); d flushed the only
    acknowledged write and was promoted; b was repointed to d (timeline 2,
    flush 0) before the orchestrator crashed, so d never got a set; d hangs.
    Too few of the set answer, so only the bound vouches: the winner must be
    the member that flushed it (the old primary a), not b for its newer timeline."""
    s = SyncCluster()
    s.start(count=1, method=SyncMethod.ANY)
    s.orchestrate(None, 1)
    s.traffic(1, [0, 0, 0, 10])
    s.fail(dead=False, name="a")
    s.lease_expires()
    s.orchestrate(None, 1)
    s.orchestrate(1, 1)
    s.leader_fails(dead=False, expire=False)
    s.lease_expires()
    s.revive(name="a")
    s.orchestrate(None, 1)
    s.promoted_members_hold_every_acknowledged_write()
    assert [m for m, _, _ in s.promotions] == ["d", "a"]


def test_new_leader_set_waits_for_its_members_to_catch_up() -> None:
    """Found by the random walk: FIRST 1 (d) acked LSN 1; a is lost and d is
    promoted; its first set must not be FIRST 1 (b) while b is at 0, or d's
    death hands the election to b without the acknowledged write."""
    m = SyncCluster()
    m.start(1, SyncMethod.FIRST)
    m.traffic(1, [0, 0, 0, 10])
    m.orchestrate(None)
    assert m.sim.sync.names == ("d",) and m.acked == 1
    m.fail("a", False)
    m.lease_expires()
    m.orchestrate(None)
    m.orchestrate(1)
    m.orchestrate(None)
    m.leader_fails(False, expire=True)
    m.orchestrate(None)
    m.promoted_members_hold_every_acknowledged_write()


def test_a_member_repointed_below_the_fork_does_not_win_by_its_timeline() -> None:
    """Found by the random walk: ANY 2 (b, c, d); d flushed 60 and c 10 of a
    79-byte write (10 acknowledged); a is lost and d promoted; b is repointed
    to d (timeline 2, flush 0) before the orchestrator crashes; d hangs. b and
    c are two of the set, enough to hear, but b's timeline says nothing below
    d's fork: c, holding the acknowledged write, must win, not b."""
    s = SyncCluster()
    s.start(count=2, method=SyncMethod.ANY)
    s.orchestrate(None, 1)
    s.traffic(79, [0, 0, 10, 60])
    assert s.acked == 10
    s.fail(dead=False, name="a")
    s.lease_expires()
    s.orchestrate(None, 1)
    s.orchestrate(1, 1)
    s.leader_fails(dead=False, expire=False)
    s.lease_expires()
    s.orchestrate(None, 1)
    s.promoted_members_hold_every_acknowledged_write()
    assert [m for m, _, _ in s.promotions] == ["d", "c"]
