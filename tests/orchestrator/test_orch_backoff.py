"""The executor's backoff for actions that keep not helping (issue 10, item 4):
the pure ``ActionBackoff`` table-driven, and the controller using it with an
injected ``decide`` and a fake executor."""
from __future__ import annotations

import dataclasses

import pytest

from orch_procs import procs  # noqa: F401  (fixture)
from test_orch_controller import FakeDcs
from walrus_ha.orchestrator.backoff import ActionBackoff
from walrus_ha.orchestrator.config import OrchestratorConfig
from walrus_ha.orchestrator.controller import Controller
from walrus_ha.orchestrator.core.model import Decision, Follow, Promote
from walrus_ha.orchestrator.core.states import State
from walrus_ha.orchestrator.executor import Outcome


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("rand,delays", [
    (0.0, [None, None, None, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]),       # half of the full delay
    (1.0, [None, None, None, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),      # all of it, capped at 10 s
])
def test_delays_double_after_the_free_runs_with_jitter_and_a_cap(rand, delays):
    clock = Clock()
    b = ActionBackoff(clock=clock, rand=lambda: rand)
    got = []
    for _ in delays:
        assert b.wait_s("k") == 0.0
        res = b.unhelpful("k")
        got.append(None if res is None else res[1])
        clock.t += 100          # long after the delay
    assert got == delays


def test_wait_counts_down_and_help_or_forgetting_clears_it():
    clock = Clock()
    b = ActionBackoff(clock=clock, rand=lambda: 1.0, free_runs=0)
    assert b.unhelpful("k") == (1, 0.5)
    assert b.wait_s("k") == 0.5 and b.wait_s("other") == 0.0
    clock.t += 0.2
    assert b.wait_s("k") == pytest.approx(0.3)
    assert b.helped("k") == 1 and b.wait_s("k") == 0.0
    b.unhelpful("k")
    b.keep_only(["other"])
    assert b.wait_s("k") == 0.0 and not b.backing_off("k")


class FakeExecutor:
    def __init__(self, outcome):
        self.outcome = outcome
        self.runs = 0

    def execute(self, action, view):
        self.runs += 1
        return self.outcome(action)


CONFIG = OrchestratorConfig(id="o1", ttl=10.0, loop_wait=0.1, retry_timeout=0.5, rpc_timeout=0.2)


def controller(action, outcome):
    c = Controller(CONFIG, FakeDcs(), decide=lambda s, cfg, now, previous: Decision(
        State.HEALTHY, (action,), "b is not streaming from a"), explain=lambda s, cfg: None)
    clock = Clock()
    c.backoff = ActionBackoff(clock=clock, rand=lambda: 1.0)
    c.executor = FakeExecutor(outcome)
    assert c.election.tick()
    return c, clock


@pytest.mark.parametrize("action,outcome", [
    (Follow("b", "a", 2), lambda a: Outcome(a, True, False, "already following a@h:1")),     # no-op
    (Follow("b", "a", 2), lambda a: Outcome(a, False, False, "FAILED_PRECONDITION: x", hopeless=True)),
    (Promote("b", 3), lambda a: Outcome(a, False, False, "INTERNAL: engine broke", hopeless=True)),
])
def test_controller_backs_off_an_action_that_does_not_help(action, outcome, caplog):
    c, clock = controller(action, outcome)
    for _ in range(20):
        c.tick()
    assert c.executor.runs == 4           # 3 free runs, then one delay (0.5 s) not yet over
    assert "action backoff" in caplog.text and "b is not streaming from a" in caplog.text
    clock.t += 0.5
    c.tick()
    assert c.executor.runs == 5


@pytest.mark.parametrize("outcome", [
    lambda a: Outcome(a, True, True, "following a"),                                   # it helped
    lambda a: Outcome(a, False, False, "UNAVAILABLE: connection reset"),               # unreachable
    lambda a: Outcome(a, True, False, "already leader at term 3"),                     # a no-op Promote
])
def test_controller_does_not_back_off_otherwise(outcome):
    action = Promote("b", 3) if "leader" in outcome(None).detail else Follow("b", "a", 2)
    c, _ = controller(action, outcome)
    for _ in range(10):
        c.tick()
    assert c.executor.runs == 10


# -- real processes ----------------------------------------------------------------------

def test_a_standby_that_can_never_stream_is_backed_off_and_reported(procs):
    """A standby whose data holds a term no leader will reach (poisoned before
    terms needed etcd's vouching) refuses every stream, and each Follow is a
    no-op: the orchestrator used to send it every loop; it now backs off and
    logs why, with the decision's reason."""
    from orch_procs import wait_for
    from walrus_ha.node.engine.embedded.storage import read_control, write_control

    for n in ("a", "b"):
        procs.agent(n)
    primary = procs.primary()
    standby = procs.agents["b" if primary.name == "a" else "a"]
    procs.standby_of(standby.name, primary.name)
    standby.stop()
    data_dir = procs.base / standby.name / "data"
    control = read_control(str(data_dir))
    write_control(str(data_dir), dataclasses.replace(control, term=2 ** 64 - 1))
    orch = procs.orchestrator("o1")
    standby.start()
    line = wait_for(lambda: next((ln for ln in orch.log_text().splitlines()
                                  if "action backoff" in ln and f"member={standby.name}" in ln), None),
                    timeout=120, what="the backoff line for the poisoned standby")
    assert "runs=4" in line and "decision=" in line and "retry_in_s=" in line
