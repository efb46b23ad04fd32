"""The time-bound operator plans (``core/schedule.py``): a scheduled
switchover is due / not due / expired, and a leader in a planned restart is
not failed over until the restart's deadline (and a dead agent is never
taken for a restart)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from core_builders import dead, healthy, primary, standby, summary
from walrus_ha.orchestrator.core import (
    ClearSwitchover,
    CoreConfig,
    RequestOutcome,
    Role,
    State,
    SwitchoverRequest,
    decide,
)
from walrus_ha.orchestrator.core.schedule import Due, restarting, switchover_due

C = CoreConfig(scheduled_grace=60.0)
T = 1_000_000.0          # the scheduled time


@pytest.mark.parametrize("at, now, want", [
    (0.0, T, Due.DUE),                  # not scheduled: at once
    (T, T - 0.001, Due.NOT_DUE),
    (T, T - 3600, Due.NOT_DUE),
    (T, T, Due.DUE),
    (T, T + 60, Due.DUE),               # the grace is inclusive
    (T, T + 60.001, Due.EXPIRED),
    (T, T + 86400, Due.EXPIRED),
], ids=["unscheduled", "just-before", "an-hour-before", "on-time", "end-of-grace", "just-expired", "a-day-late"])
def test_switchover_due(at: float, now: float, want: Due) -> None:
    assert switchover_due(at, now, 60.0) is want


def scheduled(at: float, candidate: str = "b"):
    return healthy(switchover=SwitchoverRequest(candidate=candidate, requested_at=T - 10, scheduled_at=at))


def test_scheduled_switchover_waits_for_its_time() -> None:
    d = decide(scheduled(T), C, T - 30, State.HEALTHY)
    assert d.state is State.HEALTHY and summary(d) == []
    assert "scheduled in 30s" in d.reason


def test_scheduled_switchover_starts_when_due() -> None:
    d = decide(scheduled(T), C, T + 1, State.HEALTHY)
    assert d.state is State.SWITCHING_OVER
    assert summary(d) == ["save switchover demoting b@2", "demote a@1"]


def test_scheduled_switchover_seen_too_late_is_refused_not_run() -> None:
    d = decide(scheduled(T), C, T + 61, State.HEALTHY)
    assert d.state is State.HEALTHY
    clears = [a for a in d.actions if isinstance(a, ClearSwitchover)]
    assert len(clears) == 1 and clears[0].outcome is RequestOutcome.REFUSED
    assert "expired" in clears[0].reason and "demote a@1" not in summary(d)


def test_unscheduled_switchover_starts_at_once() -> None:
    d = decide(scheduled(0.0), C, T, State.HEALTHY)
    assert summary(d)[-1] == "demote a@1"


# -- planned restart ------------------------------------------------------------

def restarting_leader(until: float, **kw):
    a = primary(role=Role.STOPPED, restarting_until=until, **kw)
    return healthy(a, standby("b", streaming=False), standby("c", streaming=False))


def test_restarting_is_only_an_answering_member_before_its_deadline() -> None:
    a = primary(restarting_until=T)
    assert restarting(a, T - 1)
    assert not restarting(a, T)
    assert not restarting(dead(a), T - 1)
    assert not restarting(primary(), T)
    assert not restarting(None, T)


def test_leader_restarting_within_its_deadline_is_a_planned_outage() -> None:
    d = decide(restarting_leader(T + 20), C, T, State.HEALTHY)
    assert d.state is State.RESTARTING and summary(d) == []
    assert "20.0s left" in d.reason


def test_after_the_deadline_the_normal_rules_apply() -> None:
    d = decide(restarting_leader(T - 1), C, T, State.RESTARTING)
    assert d.state is State.PRIMARY_SUSPECT          # engine stopped under the key: suspect, as before
    assert d.transition is not None and d.transition.frm is State.RESTARTING


def test_a_dead_agent_is_not_a_restart_the_fast_path_still_applies() -> None:
    snap = restarting_leader(T + 20)
    snap = replace(snap, members=(dead(snap.members[0]),) + snap.members[1:])
    d = decide(snap, C, T, State.RESTARTING)
    assert summary(d) == ["revoke a@1"]


def test_restarted_leader_back_as_primary_is_healthy_again() -> None:
    d = decide(healthy(), C, T, State.RESTARTING)
    assert d.state is State.HEALTHY


def test_a_restarting_standby_is_not_repointed() -> None:
    snap = healthy(primary(), standby("b", streaming=False, restarting_until=T + 5), standby("c"))
    assert "follow b->a@1" not in summary(decide(snap, C, T, State.HEALTHY))
    assert "follow b->a@1" in summary(decide(snap, C, T + 6, State.HEALTHY))
