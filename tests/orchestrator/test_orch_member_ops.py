"""What the orchestrator refuses before it asks an agent to restart or
re-clone (``orchestrator/member_ops.py``, pure over one etcd view), and the
agent's own role rule for a restart (``node/agent/operations.py``)."""
from __future__ import annotations

import pytest

from walrus_ha.common.errors import InvalidArgument, Refused
from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.node.agent.operations import RestartRole, role_problem
from walrus_ha.node.engine.base import Role
from walrus_ha.orchestrator.member_ops import reinit_problem, restart_problem

MEMBERS = tuple(MemberRecord(n, agent_address=f"127.0.0.1:{7000 + i}") for i, n in enumerate("abc"))


def view(**kw) -> ClusterView:
    base = dict(leader=LeaderRecord("a", term=3), term=3, members=MEMBERS)
    return ClusterView(**{**base, **kw})


@pytest.mark.parametrize("kw, member, force, want", [
    ({}, "a", False, None),
    ({}, "b", False, None),
    ({}, "zz", False, InvalidArgument),
    ({"failover": {"term": 4}}, "a", False, Refused),
    ({"failover": {"term": 4}}, "a", True, None),
    ({"switchover": {"candidate": "b"}}, "b", False, Refused),
    ({"switchover": {"candidate": "b", "scheduled_at": 5.0}}, "b", False, None),   # later: no conflict now
    ({"leader": None}, "b", False, None),          # a restart needs no leader
], ids=["leader", "standby", "unknown", "in-flight", "in-flight-forced", "pending-switchover",
        "scheduled-switchover", "no-leader"])
def test_restart_problem(kw, member, force, want) -> None:
    got = restart_problem(view(**kw), member, force)
    assert (type(got) if got else None) is want


@pytest.mark.parametrize("kw, member, force, want, says", [
    ({}, "b", False, None, ""),
    ({}, "a", False, Refused, "is the primary"),
    ({}, "a", True, Refused, "is the primary"),    # never, even forced
    ({"leader": None}, "b", False, Refused, "no leader"),
    ({}, "zz", False, InvalidArgument, "unknown member"),
    ({"sync": SyncRecord("first", 1, ("b",), "a", 3)}, "b", False, Refused, "synchronous set"),
    ({"sync": SyncRecord("first", 1, ("b",), "a", 3)}, "b", True, None, ""),
    ({"sync": SyncRecord("first", 1, ("b",), "a", 3)}, "c", False, None, ""),
    ({"failover": {"term": 4}}, "b", False, Refused, "in flight"),
], ids=["standby", "primary", "primary-forced", "no-leader", "unknown", "sync-member", "sync-member-forced",
        "async-member", "in-flight"])
def test_reinit_problem(kw, member, force, want, says) -> None:
    got = reinit_problem(view(**kw), member, force)
    assert (type(got) if got else None) is want
    assert says in str(got or "")


@pytest.mark.parametrize("want, role, holds, ok", [
    (RestartRole.ANY, Role.PRIMARY, True, True),
    (RestartRole.ANY, Role.STANDBY, False, True),
    (RestartRole.PRIMARY, Role.PRIMARY, True, True),
    (RestartRole.PRIMARY, Role.STANDBY, False, False),
    (RestartRole.REPLICA, Role.STANDBY, False, True),
    (RestartRole.REPLICA, Role.PRIMARY, True, False),
    (RestartRole.REPLICA, Role.PRIMARY, False, False),     # primary data, fenced: not a replica either
    (RestartRole.ANY, Role.STOPPED, False, False),
], ids=["any-primary", "any-standby", "primary-primary", "primary-standby", "replica-standby",
        "replica-primary", "replica-fenced-primary", "stopped"])
def test_restart_role(want, role, holds, ok) -> None:
    assert (role_problem(want, role, holds) is None) is ok


def test_restart_role_words() -> None:
    assert RestartRole.parse("") is RestartRole.ANY
    assert RestartRole.parse("standby") is RestartRole.REPLICA
    assert RestartRole.parse("Primary") is RestartRole.PRIMARY
    with pytest.raises(ValueError):
        RestartRole.parse("leader")
