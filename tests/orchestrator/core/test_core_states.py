"""The state machine's transition table."""
from __future__ import annotations

import pytest

from walrus_ha.orchestrator.core import TRANSITIONS, InvalidTransition, State, Transition, transition


def test_same_state_is_not_a_transition() -> None:
    for s in State:
        assert transition(s, s, "x") is None


def test_known_transition_is_logged_from_to_reason() -> None:
    t = transition(State.HEALTHY, State.PRIMARY_SUSPECT, "leader agent timed out")
    assert t == Transition(State.HEALTHY, State.PRIMARY_SUSPECT, "leader agent timed out")
    assert str(t) == "healthy -> primary_suspect: leader agent timed out"


@pytest.mark.parametrize("frm,to", [
    (State.HEALTHY, State.BOOTSTRAPPING),
    (State.PRIMARY_SUSPECT, State.BOOTSTRAPPING),
    (State.DEGRADED, State.STARTING),
    (State.PROMOTING, State.STARTING),
    (State.HEALTHY, State.STARTING),
], ids=lambda s: s.value)
def test_unknown_transition_is_an_error(frm: State, to: State) -> None:
    with pytest.raises(InvalidTransition, match=f"{frm.value} -> {to.value}"):
        transition(frm, to, "why")


def test_starting_and_paused_reach_everything() -> None:
    for s in State:
        if s not in (State.STARTING,):
            assert (State.STARTING, s) in TRANSITIONS
            assert (State.PAUSED, s) in TRANSITIONS or s is State.PAUSED
            assert (s, State.PAUSED) in TRANSITIONS or s is State.PAUSED


def test_nothing_returns_to_starting() -> None:
    assert not [k for k in TRANSITIONS if k[1] is State.STARTING]


def test_every_entry_has_a_meaning() -> None:
    assert all(isinstance(v, str) and v for v in TRANSITIONS.values())
    assert all(frm is not to for frm, to in TRANSITIONS)


def test_failover_path_is_legal() -> None:
    path = [State.STARTING, State.HEALTHY, State.PRIMARY_SUSPECT, State.FAILING_OVER, State.PROMOTING,
            State.REPOINTING, State.HEALTHY, State.SWITCHING_OVER, State.PROMOTING, State.HEALTHY]
    for frm, to in zip(path, path[1:]):
        assert transition(frm, to, "step") is not None
