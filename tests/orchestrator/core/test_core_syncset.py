"""Choosing and changing the synchronous standby set, step by step."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from core_builders import dead, healthy, hung, primary, standby, sync
from walrus_ha.orchestrator.core import CoreConfig, LeaderView, SyncMethod
from walrus_ha.orchestrator.core.syncset import plan_sync

FIRST1 = CoreConfig(synchronous_mode=True)
FIRST2 = CoreConfig(synchronous_mode=True, synchronous_node_count=2)
ANY1 = CoreConfig(synchronous_mode=True, synchronous_method=SyncMethod.ANY)


@dataclass
class Row:
    id: str
    snapshot: object
    config: CoreConfig
    publish: str | None          # rendered set published now, "" = empty set, None = nothing
    short: bool = False


def render(p) -> str | None:
    if p is None:
        return None
    return f"{p.method.name} {p.num} ({', '.join(p.names)})" if p.num else ""


ROWS = [
    Row("first-publish-picks-most-advanced",
        healthy(primary(), standby("b", flush_lsn=900), standby("c")), FIRST1, "FIRST 1 (c)"),
    Row("first-publish-ties-by-name", healthy(), FIRST1, "FIRST 1 (b)"),
    Row("current-set-kept-no-churn",
        healthy(primary(), standby("b", flush_lsn=900), standby("c"), sync=sync("b")), FIRST1, None),
    Row("member-lost-add-replacement-first",
        healthy(primary(), dead(standby("b")), standby("c"), sync=sync("b")), FIRST1, "FIRST 1 (b, c)"),
    Row("then-drop-lost-member-once-caught-up",
        healthy(primary(), dead(standby("b")), standby("c"), sync=sync("b", "c")), FIRST1, "FIRST 1 (c)"),
    Row("wait-to-drop-until-caught-up",
        healthy(primary(), dead(standby("b")), standby("c", flush_lsn=900), sync=sync("b", "c")), FIRST1, None),
    Row("not-streaming-is-not-healthy",
        healthy(primary(), standby("b", streaming=False), standby("c"), sync=sync("b")), FIRST1, "FIRST 1 (b, c)"),
    Row("wrong-upstream-is-not-healthy",
        healthy(primary(), standby("b", upstream="c"), standby("c"), sync=sync("b")), FIRST1, "FIRST 1 (b, c)"),
    Row("nofailover-never-in-set",
        healthy(primary(), standby("b", nofailover=True), standby("c")), FIRST1, "FIRST 1 (c)"),
    # A first set for a leader and term waits until num members flushed the
    # leader's LSN: else a laggard could win the next failover without the
    # writes acknowledged in the previous term.
    Row("first-set-waits-for-catch-up",
        healthy(primary(), standby("b", nofailover=True), standby("c", flush_lsn=10)), FIRST1, None),
    # Strict: a set never shrinks below synchronous_node_count because its
    # members stopped streaming (a dying primary looks like that); commits wait.
    Row("nobody-healthy-keeps-the-set",
        healthy(primary(), hung(standby("b")), sync=sync("b")), FIRST1, None, short=True),
    Row("nobody-streaming-keeps-the-set",
        healthy(primary(), standby("b", streaming=False), standby("c", streaming=False), sync=sync("b")),
        FIRST1, None, short=True),
    Row("two-wanted-one-healthy",
        healthy(primary(), standby("b"), dead(standby("c"))), FIRST2, "FIRST 1 (b)", short=True),
    Row("raise-num-in-two-steps-add",
        healthy(primary(), standby("b"), standby("c"), sync=sync("b")), FIRST2, "FIRST 1 (b, c)"),
    Row("raise-num-when-caught-up",
        healthy(primary(), standby("b"), standby("c"), sync=sync("b", "c")), FIRST2, "FIRST 2 (b, c)"),
    Row("raise-num-waits-for-catch-up",
        healthy(primary(), standby("b"), standby("c", flush_lsn=900), sync=sync("b", "c")), FIRST2, None),
    Row("lower-num-at-once",
        healthy(primary(), standby("b"), standby("c"), sync=sync("b", "c", num=2)), FIRST1, "FIRST 1 (b)"),
    Row("any-takes-all-healthy",
        healthy(primary(), standby("b"), standby("c"), standby("d")), ANY1, "ANY 1 (b, c, d)"),
    Row("any-adds-newcomer-at-once",
        healthy(primary(), standby("b"), standby("c"), sync=sync("b", method=SyncMethod.ANY)), ANY1,
        "ANY 1 (b, c)"),
    Row("any-drops-lost-member-when-caught-up",
        healthy(primary(), standby("b"), dead(standby("c")), sync=sync("b", "c", method=SyncMethod.ANY)), ANY1,
        "ANY 1 (b)"),
    Row("stale-term-replaced-once-caught-up",
        healthy(primary(), standby("b"), standby("c", flush_lsn=1), sync=sync("a", "b", term=0)),
        FIRST1, "FIRST 1 (b)"),
    Row("stale-term-laggards-wait",
        healthy(primary(), standby("b", flush_lsn=1), standby("c", flush_lsn=1), sync=sync("a", "b", term=0)),
        FIRST1, None),
    Row("other-leader-set-replaced",
        healthy(primary(), standby("b"), standby("c"), sync=sync("b", leader="c")), FIRST1, "FIRST 1 (b)"),
    Row("sync-off-publishes-async", healthy(sync=sync("b")), CoreConfig(), ""),
    Row("sync-off-nothing-published", healthy(), CoreConfig(), None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_plan_sync(row: Row) -> None:
    snap = row.snapshot
    lm = snap.member("a")
    plan = plan_sync(snap, row.config, snap.leader, lm)
    assert (render(plan.publish), plan.short) == (row.publish, row.short), plan.reason
    if plan.publish is not None:
        assert (plan.publish.leader, plan.publish.term) == ("a", snap.leader.term)


def test_walk_from_lost_member_to_new_set_converges() -> None:
    """Apply each published step as the new key until nothing changes."""
    snap = healthy(primary(), dead(standby("b")), standby("c"), standby("d", flush_lsn=900), sync=sync("b"))
    seen = []
    for _ in range(5):
        plan = plan_sync(snap, FIRST1, LeaderView("a", 1, 1), snap.member("a"))
        if plan.publish is None:
            break
        seen.append(render(plan.publish))
        from dataclasses import replace

        from walrus_ha.orchestrator.core import SyncView
        p = plan.publish
        snap = replace(snap, sync=SyncView(p.method, p.num, p.names, p.leader, p.term))
    assert seen == ["FIRST 1 (b, c)", "FIRST 1 (c)"]


def test_growing_a_set_never_carries_the_leader_along() -> None:
    """Found by hypothesis: a published set that names its own leader (an
    operator's edit, or an older leader's set) grows without the leader's
    name: the leader is no synchronous standby of itself."""
    snap = healthy(primary(), dead(standby("b")), standby("c"), sync=sync("a", "b"))
    plan = plan_sync(snap, FIRST1, LeaderView("a", 1, 1), snap.member("a"))
    assert plan.publish is not None and "a" not in plan.publish.names, plan.reason
