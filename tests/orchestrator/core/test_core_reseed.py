"""Table-driven tests of the re-seed of an emptied etcd (``core.reseed``)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core_builders import dead, hung, primary, standby, sync
from walrus_ha.orchestrator.core import (
    ClusterSnapshot,
    CoreConfig,
    ReseedKeyspace,
    SaveFailoverState,
    State,
    SwitchoverRequest,
    decide,
)

C = CoreConfig()
SYNC = CoreConfig(synchronous_mode=True)
NOW = 1000.0


def lost(*members, **kw) -> ClusterSnapshot:
    """etcd emptied: no term, no leader, no initialize; members keep their data."""
    return ClusterSnapshot(term=0, leader=None, members=tuple(members), initialized=False,
                           keyspace_lost_at=kw.pop("lost_at", NOW - 1), **kw)


def fenced_primary(name="a", term=3, **kw):
    return primary(name, term=term, fenced=True, timeline=2, **kw)


def std(name, term=3, **kw):
    return standby(name, term=term, timeline=2, **kw)


FAILOVER_TO_C = SwitchoverRequest(candidate="c", failover=True)


@dataclass
class Case:
    id: str
    snapshot: ClusterSnapshot
    reseed: tuple | None          # (term, initialize, sync_leader) or None = wait
    config: CoreConfig = C
    reason_has: str = ""


CASES = [
    Case("async-last-primary-answers-reseeds-at-highest-term",
         lost(fenced_primary(flush_lsn=1000), std("b", flush_lsn=900), std("c", flush_lsn=950)), (3, "a", "")),
    Case("term-never-below-any-member-or-the-floor",
         lost(fenced_primary(flush_lsn=1000, highest_term=7), std("b"), std("c"), term_floor=5), (7, "a", "")),
    Case("term-floor-from-the-orchestrator-wins",
         lost(fenced_primary(flush_lsn=1000), std("b"), std("c"), term_floor=9), (9, "a", "")),
    Case("last-primary-keeps-leading-on-a-tie",
         lost(std("b", flush_lsn=1000), fenced_primary("c", flush_lsn=1000), std("d", flush_lsn=1000)),
         (3, "c", "")),
    Case("standby-with-more-wal-wins-when-primary-answers",
         lost(fenced_primary(flush_lsn=1000), std("b", flush_lsn=1010), std("c")), (3, "b", "")),
    Case("async-last-primary-missing-waits",
         lost(std("b", flush_lsn=900), std("c", flush_lsn=950)), None, reason_has="waiting up to 10s"),
    Case("async-last-primary-hung-waits",
         lost(hung(fenced_primary()), std("b"), std("c")), None, reason_has="the last primary (a)"),
    Case("async-last-primary-missing-after-reseed-wait-takes-best",
         lost(std("b", flush_lsn=900), std("c", flush_lsn=950), lost_at=NOW - 11), (3, "c", "")),
    Case("async-failover-request-goes-at-once",
         lost(std("b", flush_lsn=900), std("c", flush_lsn=950), switchover=FAILOVER_TO_C), (3, "c", "")),
    Case("stale-primary-at-older-term-is-not-the-last-primary",
         lost(primary("a", term=2, timeline=1, fenced=True, flush_lsn=2000), std("b"), std("c")), None,
         reason_has="unknown"),
    Case("sync-last-primary-answers-reseeds-with-a-sync-record",
         lost(fenced_primary(flush_lsn=1000), std("b", flush_lsn=1000), std("c", flush_lsn=900)),
         (3, "a", "a"), SYNC),
    Case("sync-last-primary-missing-waits-even-after-reseed-wait",
         lost(dead(fenced_primary()), std("b"), std("c"), lost_at=NOW - 100), None, SYNC,
         reason_has="synchronous mode: waiting for the last primary (a)"),
    Case("sync-operator-override",
         lost(std("b", flush_lsn=1000), std("c", flush_lsn=900), switchover=FAILOVER_TO_C), (3, "c", "c"), SYNC),
    Case("sync-nofailover-primary-and-nobody-as-far",
         lost(fenced_primary(flush_lsn=1000, nofailover=True), std("b", flush_lsn=900), std("c", flush_lsn=900)),
         None, SYNC, reason_has="flushed as far"),
    Case("override-to-unreachable-candidate-refused",
         lost(fenced_primary(), std("b"), hung(std("c")), switchover=FAILOVER_TO_C), None,
         reason_has="cannot lead"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reseed(case: Case) -> None:
    d = decide(case.snapshot, case.config, NOW, previous=State.HEALTHY)
    assert d.state is State.RESEEDING, d.reason
    got = [(a.term, a.initialize, a.sync_leader) for a in d.actions if isinstance(a, ReseedKeyspace)]
    assert got == ([case.reseed] if case.reseed else []), d.reason
    assert case.reason_has in d.reason


def test_after_the_reseed_the_saved_failover_promotes_above_it() -> None:
    snap = lost(fenced_primary(flush_lsn=1000), std("b"), std("c"))
    saved = [a for a in decide(snap, C, NOW).actions if isinstance(a, SaveFailoverState)]
    assert [(s.state.term, s.state.old_leader, s.state.new_leader) for s in saved] == [(4, "a", "a")]
    snap = replace(snap, term=3, initialized=True, failover=saved[0].state)
    d = decide(snap, C, NOW, previous=State.RESEEDING)
    assert d.state is State.PROMOTING
    assert [(a.member, a.term) for a in d.actions if a.kind.value == "promote"] == [("a", 4)]


def test_a_saved_failover_never_promotes_while_the_term_key_is_missing() -> None:
    snap = lost(fenced_primary(flush_lsn=1000), std("b"), std("c"))
    saved = [a for a in decide(snap, C, NOW).actions if isinstance(a, SaveFailoverState)][0].state
    d = decide(replace(snap, failover=saved), C, NOW, previous=State.RESEEDING)
    assert d.state is State.RESEEDING and not [a for a in d.actions if a.kind.value == "promote"]


def test_sync_after_the_reseed_only_the_set_leader_is_promoted() -> None:
    snap = lost(fenced_primary(flush_lsn=1000), std("b", flush_lsn=1000), std("c"))
    snap = replace(snap, term=3, initialized=True, sync=sync("a", leader="a", term=3))
    d = decide(snap, SYNC, NOW, previous=State.RESEEDING)
    assert [(a.member, a.term) for a in d.actions if a.kind.value == "promote"] == [("a", 4)], d.reason


def test_members_not_back_yet_but_the_orchestrator_saw_a_term_waits_reseeding() -> None:
    snap = ClusterSnapshot(term=0, members=(), initialized=False, term_floor=4, keyspace_lost_at=NOW)
    d = decide(snap, C, NOW, previous=State.HEALTHY)
    assert d.state is State.RESEEDING and not [a for a in d.actions if isinstance(a, ReseedKeyspace)]


def test_fresh_cluster_is_still_bootstrapping() -> None:
    snap = ClusterSnapshot(term=0, members=(standby("a", term=0),), initialized=True)
    assert decide(snap, C, NOW).state is State.BOOTSTRAPPING
