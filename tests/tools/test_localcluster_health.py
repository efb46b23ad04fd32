"""The health verdict over agents' statuses (table-driven)."""
import pytest

from walrus_ha.tools.localcluster.health import MemberHealth, judge


def P(name, **kw):
    return MemberHealth(name, True, role="primary", holds_leader=True, **kw)


def S(name, up="a", streaming=True, **kw):
    return MemberHealth(name, True, role="standby", streaming=streaming, upstream=up, **kw)


CASES = [
    ("healthy", [P("a"), S("b"), S("c")], True, "a"),
    ("standby not streaming", [P("a"), S("b"), S("c", streaming=False)], False, "a"),
    ("standby follows someone else", [P("a"), S("b"), S("c", up="b")], False, "a"),
    ("unreachable standby", [P("a"), S("b"), MemberHealth("c", False)], False, "a"),
    ("no leader", [S("a", up=""), S("b", up="")], False, None),
    ("fenced primary is no leader", [P("a", fenced=True), S("b")], False, None),
    ("two primaries", [P("a"), P("b")], False, None),
    ("single node", [P("a")], True, "a"),
]


@pytest.mark.parametrize("members,healthy,leader", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge(members, healthy, leader):
    v = judge(members)
    assert v.healthy is healthy
    assert v.leader == leader
    assert bool(v.problems) is not healthy
