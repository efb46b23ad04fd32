"""The controller's loop step with an injected ``decide`` and a fake DCS
(pure sequencing logic: who may act, in which order, when to stop)."""
from __future__ import annotations

from walrus_ha.common.errors import DcsUnavailable
from walrus_ha.common.records import ClusterView, LeaderRecord
from walrus_ha.orchestrator.config import OrchestratorConfig
from walrus_ha.orchestrator.controller import Controller
from walrus_ha.orchestrator.core.model import ClearFailoverState, ClearSwitchover, Decision, RevokeLeaderLease, Wait
from walrus_ha.orchestrator.core.states import State


class FakeDcs:
    def __init__(self, view=None, campaign=True):
        self.view = view or ClusterView()
        self.won = campaign
        self.calls = []
        self.fail_clear = False

    def grant_lease(self, ttl):
        return 1

    def refresh_lease(self, lease_id):
        return 10.0

    def revoke_lease(self, lease_id):
        self.calls.append("revoke_lease")

    def campaign(self, orch_id, lease_id):
        return self.won

    def read_view(self, deadline_s=None):
        return self.view

    def revoke_leader_lease(self, term, deadline_s=None):
        self.calls.append(("revoke_leader_lease", term))
        return True

    def clear_switchover(self, deadline_s=None):
        if self.fail_clear:
            raise DcsUnavailable("etcd down")
        self.calls.append("clear_switchover")
        return True

    def clear_failover_state(self, deadline_s=None):
        self.calls.append("clear_failover_state")
        return True


CONFIG = OrchestratorConfig(id="o1", ttl=10.0, loop_wait=0.1, retry_timeout=0.5, rpc_timeout=0.2)


def make(dcs, actions, seen=None):
    def decide(snapshot, config, now, previous):
        if seen is not None:
            seen.append((snapshot, previous))
        return Decision(State.FAILING_OVER, tuple(actions), "test")
    return Controller(CONFIG, dcs, decide=decide, explain=lambda s, c: None)


def test_spare_decides_nothing():
    dcs = FakeDcs(campaign=False)
    c = make(dcs, [RevokeLeaderLease(expected_term=1, leader="a", reason="x")])
    c.election.tick()
    assert c.tick() is None and dcs.calls == []


def test_active_executes_in_order_and_remembers_state():
    view = ClusterView(term=3, leader=LeaderRecord(name="a", term=3))
    dcs, seen = FakeDcs(view), []
    c = make(dcs, [RevokeLeaderLease(expected_term=3, leader="a", reason="x"), ClearSwitchover(),
                   ClearFailoverState(), Wait("done")], seen)
    assert c.election.tick()
    d = c.tick()
    assert d.state is State.FAILING_OVER and c.state is State.FAILING_OVER
    assert dcs.calls == [("revoke_leader_lease", 3), "clear_switchover", "clear_failover_state"]
    assert seen[0][1] is State.STARTING and seen[0][0].leader.name == "a" and seen[0][0].last_leader == "a"
    c.tick()
    assert seen[1][1] is State.FAILING_OVER


def test_stops_at_the_first_failed_action():
    dcs = FakeDcs()
    dcs.fail_clear = True
    c = make(dcs, [ClearSwitchover(), ClearFailoverState()])
    c.election.tick()
    c.tick()
    assert dcs.calls == []


def test_stops_acting_when_no_longer_active():
    dcs = FakeDcs()
    c = make(dcs, [ClearSwitchover(), ClearFailoverState()])
    c.election.tick()
    original = c.executor.execute

    def execute_then_lose(action, view):
        out = original(action, view)
        c.election._active = False          # lease renewal failed meanwhile
        return out
    c.executor.execute = execute_then_lose
    c.tick()
    assert dcs.calls == ["clear_switchover"]


def test_a_failed_repoint_does_not_hold_up_the_rest():
    from walrus_ha.orchestrator.core.model import Follow
    dcs = FakeDcs()
    c = make(dcs, [Follow(member="b", leader="a", term=2), ClearSwitchover(), ClearFailoverState()])
    c.election.tick()
    c.tick()                                   # b has no agent client: its Follow fails
    assert dcs.calls == ["clear_switchover", "clear_failover_state"]


def test_an_impossible_transition_restarts_the_state_machine():
    """decide raising InvalidTransition (etcd lost its data: term back to 0)
    must not wedge every later round: the controller restarts from STARTING."""
    from walrus_ha.orchestrator.core.states import InvalidTransition
    seen = []

    def decide(snapshot, config, now, previous):
        seen.append(previous)
        if previous is State.HEALTHY:
            raise InvalidTransition("healthy -> bootstrapping is not allowed")
        return Decision(State.BOOTSTRAPPING, (), "test")
    c = Controller(CONFIG, FakeDcs(), decide=decide, explain=lambda s, c: None)
    c.election.tick()                      # winning the election resets the state to STARTING
    c.state = State.HEALTHY
    d = c.tick()
    assert seen == [State.HEALTHY, State.STARTING]
    assert d.state is State.BOOTSTRAPPING and c.state is State.BOOTSTRAPPING
