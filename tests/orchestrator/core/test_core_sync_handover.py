"""Synchronous mode right after a failover (issue 10 items 2 and 5).

* The new leader gets no empty synchronous set: it waits (under the agent's
  pending set) until a standby streams from it and caught up.
* The in-flight record stays (phase SYNCING) until that first set is
  published, so if the new leader dies first, a survivor that flushed the
  new leader's promote LSN (``promoted_bound``) may still be promoted.
* When nobody provably holds every acknowledged write, the reason says what
  the core waits for and how to override; a forced failover promotes the
  named member and its record says it was forced and what may be lost.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core_builders import dead, leaderless, primary, standby, summary, sync
from walrus_ha.orchestrator.core import (
    Candidate,
    ClusterSnapshot,
    CoreConfig,
    FailoverState,
    LeaderView,
    OperationKind,
    Phase,
    State,
    SwitchoverRequest,
    decide,
)
from walrus_ha.orchestrator.core.syncset import plan_sync

SYNC = CoreConfig(synchronous_mode=True)
NOW = 1000.0
B_PROMOTED = FailoverState(OperationKind.FAILOVER, Phase.PROMOTING, 2, "a", "b", NOW - 2, NOW - 2, 1000, (),
                           (Candidate("b", 1000, 1, 0, True, 1),))
OLD_SET = sync("b", leader="a", term=1)          # a's set: b holds every write a acknowledged


def b_leads(*others, **kw) -> ClusterSnapshot:
    """b won term 2 (timeline 2); ``others`` as given; a's set still published."""
    kw.setdefault("sync", OLD_SET)
    kw.setdefault("failover", B_PROMOTED)
    return ClusterSnapshot(term=2, leader=LeaderView("b", 2, 2),
                           members=(primary("b", timeline=2, term=2),) + others, **kw)


def force(name: str) -> SwitchoverRequest:
    return SwitchoverRequest(name, failover=True, force=True)


@dataclass
class Case:
    id: str
    snapshot: ClusterSnapshot
    state: State
    actions: list[str]
    reason_has: str = ""


CASES = [
    # item 5: no empty set for the new leader; the record waits for its own set
    Case("new-leader-no-standby-yet-keeps-record",
         b_leads(dead(primary("a")), standby("c", streaming=False, upstream="")),
         State.REPOINTING, ["rejoin c->b@2", "history 2 a->b lost=0", "save failover syncing b@2"],
         "first synchronous set"),
    Case("new-leader-standby-caught-up-publishes-then-clears",
         b_leads(dead(primary("a")), standby("c", upstream="b", timeline=2)),
         State.DEGRADED, ["publish FIRST 1 (c)", "history 2 a->b lost=0", "clear failover"]),
    Case("syncing-record-cleared-once-set-published",
         b_leads(dead(primary("a")), standby("c", upstream="b", timeline=2),
                 sync=sync("c", leader="b", term=2), failover=replace(B_PROMOTED, phase=Phase.SYNCING)),
         State.DEGRADED, ["clear failover"]),
    Case("syncing-record-kept-while-standby-behind",
         b_leads(dead(primary("a")), standby("c", upstream="b", timeline=2, flush_lsn=900),
                 failover=replace(B_PROMOTED, phase=Phase.SYNCING)),
         State.DEGRADED, [], "catch up"),
    Case("async-mode-clears-at-once",
         b_leads(dead(primary("a")), standby("c", streaming=False, upstream=""), sync=None),
         State.REPOINTING, ["rejoin c->b@2", "history 2 a->b lost=0", "clear failover"]),
    # item 2: the new leader died before its set: c flushed b's promote LSN
    Case("double-kill-survivor-with-bound-promoted",
         leaderless(dead(primary("a")), dead(primary("b", timeline=2, term=2)),
                    standby("c", upstream="b", timeline=2, streaming=False), term=2, sync=OLD_SET,
                    failover=replace(B_PROMOTED, phase=Phase.SYNCING)),
         State.FAILING_OVER, ["save failover promoting c@3", "promote c@3"]),
    Case("double-kill-restarted-old-leader-with-bound-promoted",
         leaderless(standby("a", upstream="", streaming=False, flush_lsn=1100),
                    dead(primary("b", timeline=2, term=2)), dead(standby("c")), term=2, sync=OLD_SET,
                    failover=replace(B_PROMOTED, phase=Phase.SYNCING)),
         State.FAILING_OVER, ["save failover promoting a@3", "promote a@3"]),
    Case("double-kill-survivor-behind-bound-waits-and-says-how-to-force",
         leaderless(dead(primary("a")), dead(primary("b", timeline=2, term=2)),
                    standby("c", upstream="b", timeline=2, streaming=False, flush_lsn=900), term=2,
                    sync=OLD_SET, failover=replace(B_PROMOTED, phase=Phase.SYNCING)),
         State.NO_CANDIDATE, [], "--force"),
    # the operator override
    Case("forced-failover-promotes-named-member",
         leaderless(dead(primary("a")), dead(primary("b", timeline=2, term=2)),
                    standby("c", upstream="b", timeline=2, streaming=False, flush_lsn=900), term=2,
                    sync=OLD_SET, failover=replace(B_PROMOTED, phase=Phase.SYNCING), switchover=force("c")),
         State.FAILING_OVER, ["save failover promoting c@3", "promote c@3"], "FORCED"),
    Case("forced-failover-to-dead-member-refused",
         leaderless(dead(primary("a")), dead(primary("b", timeline=2, term=2)),
                    standby("c", upstream="b", timeline=2, streaming=False, flush_lsn=900), term=2,
                    sync=OLD_SET, failover=replace(B_PROMOTED, phase=Phase.SYNCING), switchover=force("a")),
         State.NO_CANDIDATE, ["clear switchover"], "impossible"),
    Case("forced-failover-in-flight-repeats-promote",
         leaderless(dead(primary("a")), standby("c", flush_lsn=900, streaming=False), term=2, sync=OLD_SET,
                    failover=FailoverState(OperationKind.FAILOVER, Phase.PROMOTING, 3, "b", "c", NOW, NOW, 1000,
                                           forced=True)),
         State.PROMOTING, ["promote c@3"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    d = decide(case.snapshot, SYNC if case.snapshot.sync is not None else CoreConfig(), NOW)
    assert (d.state, summary(d)) == (case.state, case.actions), d.reason
    assert case.reason_has in d.reason, d.reason


def test_forced_promote_is_marked_and_receipt_says_what_may_be_lost() -> None:
    snap = CASES[[c.id for c in CASES].index("forced-failover-promotes-named-member")].snapshot
    d = decide(snap, SYNC, NOW)
    saved, promote = d.actions[0].state, d.actions[1]
    assert promote.forced and saved.forced and FailoverState.from_dict(saved.to_dict()) == saved
    assert "100 bytes" in saved.reason      # b's promote LSN 1000 - c's 900
    done = ClusterSnapshot(term=3, leader=LeaderView("c", 3, 3), failover=saved, sync=OLD_SET,
                           members=(primary("c", timeline=3, term=3, flush_lsn=900),),
                           switchover=force("c"))
    out = decide(done, SYNC, NOW + 1)
    entry = next(a.entry for a in out.actions if a.kind.value == "record_history")
    assert "FORCED" in entry.reason and entry.bytes_possibly_lost >= 100


@pytest.mark.parametrize("others", [
    (dead(primary("a")), standby("c", streaming=False, upstream="")),     # nobody streams from b yet
    (dead(primary("a")), standby("c", upstream="a")),                     # c still on the old primary
])
def test_new_leader_never_gets_an_empty_set(others) -> None:
    snap = b_leads(*others)
    for published in (OLD_SET, None):
        s = replace(snap, sync=published)
        plan = plan_sync(s, SYNC, s.leader, s.member("b"))
        assert plan.publish is None, plan
        assert "first synchronous set" in plan.reason
