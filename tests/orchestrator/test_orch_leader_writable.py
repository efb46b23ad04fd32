"""``service.leader_writable``: when WatchLeader/GetLeader call the leader
writable (pure, table-driven over ClusterViews)."""
from __future__ import annotations

import pytest

from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.orchestrator.service import leader_writable

LEADER = LeaderRecord(name="a", term=3)
PRIMARY = MemberRecord(name="a", role="primary", term=3)
OWN_SYNC = SyncRecord(num=1, names=("b",), leader="a", term=3)

CASES = [
    ("no leader", ClusterView(members=(PRIMARY,)), False),
    ("no member record yet", ClusterView(leader=LEADER), False),
    ("still a standby (promotion under way)", ClusterView(leader=LEADER, members=(
        MemberRecord(name="a", role="standby", term=3),)), False),
    ("fenced while taking leadership", ClusterView(leader=LEADER, members=(
        MemberRecord(name="a", role="primary", term=3, fenced=True),)), False),
    ("record of the previous term", ClusterView(leader=LEADER, members=(
        MemberRecord(name="a", role="primary", term=2),)), False),
    ("async: primary, unfenced, own term", ClusterView(leader=LEADER, members=(PRIMARY,)), True),
    ("sync: the old leader's set still published", ClusterView(leader=LEADER, members=(PRIMARY,), sync=SyncRecord(
        num=1, names=("a",), leader="z", term=2)), False),
    ("sync: own set of an older term", ClusterView(leader=LEADER, members=(PRIMARY,), sync=SyncRecord(
        num=1, names=("b",), leader="a", term=2)), False),
    ("sync: own set published", ClusterView(leader=LEADER, members=(PRIMARY,), sync=OWN_SYNC), True),
    ("sync disabled (empty set of another leader)", ClusterView(leader=LEADER, members=(PRIMARY,), sync=SyncRecord(
        num=0, names=(), leader="z", term=2)), True),
]


@pytest.mark.parametrize("view,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_leader_writable(view, expected):
    assert leader_writable(view) is expected
