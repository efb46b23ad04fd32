"""Table-driven tests of ``decide``: one row per scenario, readable ids."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core_builders import dead, healthy, hung, leaderless, primary, standby, summary, sync
from walrus_ha.orchestrator.core import (
    Candidate,
    ClusterSnapshot,
    CoreConfig,
    FailoverState,
    LeaderView,
    OperationKind,
    Phase,
    Role,
    State,
    SwitchoverRequest,
    SyncMethod,
    decide,
)

C = CoreConfig()
SYNC = CoreConfig(synchronous_mode=True)
NOW = 1000.0


def promoting(winner: str, term: int, since: float = NOW - 1, kind=OperationKind.FAILOVER,
              attempted=(), last_lsn: int = 1000, old: str = "a") -> FailoverState:
    cands = (Candidate(winner, 990, 1, 0, True, 1),)
    return FailoverState(kind, Phase.PROMOTING, term, old, winner, since - 1, since, last_lsn, tuple(attempted), cands)


def demoting(target: str, term: int, since: float = NOW - 1, old: str = "a") -> FailoverState:
    return FailoverState(OperationKind.SWITCHOVER, Phase.DEMOTING, term, old, target, since, since, 1000)


@dataclass
class Case:
    id: str
    snapshot: ClusterSnapshot
    state: State
    actions: list[str]
    config: CoreConfig = C
    now: float = NOW
    previous: State = State.STARTING
    reason_has: str = ""


DEMOTED_A = standby("a", upstream="", streaming=False)   # old leader after Demote

CASES = [
    # ---------------------------------------------------------------- leader up
    Case("healthy-nothing-to-do", healthy(), State.HEALTHY, []),
    Case("standby-wrong-upstream-follows",
         healthy(primary(), standby("b"), standby("c", upstream="b")), State.REPOINTING, ["follow c->a@1"]),
    Case("standby-not-streaming-follows",
         healthy(primary(), standby("b"), standby("c", streaming=False)), State.REPOINTING, ["follow c->a@1"]),
    Case("standby-with-address-upstream-is-fine",
         healthy(primary(), standby("b", upstream="a@127.0.0.1:5000"), standby("c")), State.HEALTHY, []),
    Case("second-primary-rejoins",
         healthy(primary(), standby("b"), primary("c", fenced=True)), State.REPOINTING, ["rejoin c->a@1"]),
    Case("needs-reclone-rejoins",
         healthy(primary(), standby("b"), standby("c", needs_reclone=True, streaming=False)),
         State.REPOINTING, ["rejoin c->a@1"]),
    Case("timeline-behind-after-failover-rejoins",
         healthy(primary(timeline=2), standby("b", timeline=2), standby("c", timeline=1, upstream="x")),
         State.REPOINTING, ["rejoin c->a@1"]),
    Case("timeline-behind-but-streaming-from-leader-is-left-alone",
         healthy(primary(timeline=2), standby("b", timeline=2), standby("c", timeline=1)), State.HEALTHY, []),
    Case("unreachable-standby-degraded",
         healthy(primary(), standby("b"), hung(standby("c"))), State.DEGRADED, [], reason_has="unreachable: c"),
    Case("fenced-leader-degraded",
         healthy(primary(fenced=True), standby("b"), standby("c")), State.DEGRADED, [], reason_has="fenced"),
    Case("stopped-engine-left-to-its-agent",
         healthy(primary(), standby("b"), standby("c", role=Role.STOPPED, streaming=False)), State.HEALTHY, []),
    # ---------------------------------------------------------------- suspect / fast path
    Case("leader-timeout-waits-for-lease",
         healthy(hung(primary()), standby("b", streaming=False), standby("c", streaming=False)),
         State.PRIMARY_SUSPECT, [], reason_has="timeout"),
    Case("fast-path-revokes-dead-leader",
         healthy(dead(primary()), standby("b", streaming=False), standby("c", streaming=False), term=3),
         State.FAILING_OVER, ["revoke a@3"]),
    Case("fast-path-not-while-a-standby-streams",
         healthy(dead(primary()), standby("b", streaming=False), standby("c")),
         State.PRIMARY_SUSPECT, [], reason_has="c still streaming"),
    Case("fast-path-ignores-unreachable-standbys",
         healthy(dead(primary()), standby("b", streaming=False), hung(standby("c"))),
         State.FAILING_OVER, ["revoke a@1"]),
    Case("fast-path-needs-a-reachable-standby",
         healthy(dead(primary()), dead(standby("b", streaming=False))), State.PRIMARY_SUSPECT, []),
    Case("fast-path-disabled",
         healthy(dead(primary()), standby("b", streaming=False)), State.PRIMARY_SUSPECT, [],
         config=CoreConfig(fast_path=False), reason_has="fast path disabled"),
    Case("paused-dead-leader-no-revoke",
         healthy(dead(primary()), standby("b", streaming=False), paused=True), State.PAUSED, []),
    # ---------------------------------------------------------------- failover
    Case("bootstrapping-term-0", ClusterSnapshot(term=0, members=(standby("a", upstream="", streaming=False,
                                                                           term=0),)),
         State.BOOTSTRAPPING, []),
    Case("failover-picks-highest-flush",
         leaderless(dead(primary()), standby("b", flush_lsn=990), standby("c", flush_lsn=995), term=4),
         State.FAILING_OVER, ["save failover promoting c@5", "promote c@5"], previous=State.PRIMARY_SUSPECT),
    Case("failover-skips-nofailover",
         leaderless(dead(primary()), standby("b", flush_lsn=990), standby("c", flush_lsn=995, nofailover=True)),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2"]),
    Case("failover-skips-needs-reclone-and-stopped",
         leaderless(standby("b", flush_lsn=990, needs_reclone=True), standby("c", role=Role.STOPPED),
                    standby("d", flush_lsn=10)),
         State.FAILING_OVER, ["save failover promoting d@2", "promote d@2"],
         config=CoreConfig(maximum_lag_on_failover=-1)),
    Case("failover-skips-member-without-key",
         leaderless(standby("b", flush_lsn=999, has_member_key=False), standby("c", flush_lsn=995)),
         State.FAILING_OVER, ["save failover promoting c@2", "promote c@2"]),
    Case("failover-lag-limit-excludes",
         leaderless(standby("b", flush_lsn=500), last_known_primary_lsn=1000),
         State.NO_CANDIDATE, [], config=CoreConfig(maximum_lag_on_failover=100)),
    Case("failover-lag-unlimited",
         leaderless(standby("b", flush_lsn=500), last_known_primary_lsn=1000),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2"],
         config=CoreConfig(maximum_lag_on_failover=-1)),
    Case("failover-priority-breaks-tie",
         leaderless(standby("b", priority=1), standby("c", priority=5), standby("d")),
         State.FAILING_OVER, ["save failover promoting c@2", "promote c@2"]),
    Case("failover-name-breaks-tie",
         leaderless(standby("d"), standby("c"), standby("b")),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2"]),
    Case("failover-newest-timeline-first",
         leaderless(standby("b", timeline=2, flush_lsn=900), standby("c", timeline=1, flush_lsn=1000)),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2"]),
    Case("failover-fenced-old-primary-may-win",
         leaderless(primary("a", fenced=True), standby("b", flush_lsn=900)),
         State.FAILING_OVER, ["save failover promoting a@2", "promote a@2"]),
    Case("failover-nobody-reachable",
         leaderless(dead(primary()), hung(standby("b"))), State.NO_CANDIDATE, [], reason_has="no eligible"),
    Case("paused-no-failover",
         leaderless(standby("b"), paused=True), State.PAUSED, []),
    # ---------------------------------------------------------------- synchronous mode
    Case("sync-promotes-only-set-member",
         leaderless(standby("b", flush_lsn=1000), standby("c", flush_lsn=2000), sync=sync("b")),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2"], config=SYNC),
    Case("sync-no-published-set-no-failover",
         leaderless(standby("b"), sync=None), State.NO_CANDIDATE, [], config=SYNC, reason_has="no synchronous set"),
    Case("sync-any-waits-for-quorum",
         leaderless(standby("b"), standby("c"), hung(standby("d")),
                    sync=sync("b", "c", "d", num=1, method=SyncMethod.ANY)),
         State.NO_CANDIDATE, [], config=SYNC, reason_has="need 3"),
    Case("sync-any-picks-best-of-quorum",
         leaderless(standby("b", flush_lsn=900), standby("c", flush_lsn=1000), standby("d", flush_lsn=950),
                    sync=sync("b", "c", "d", num=2, method=SyncMethod.ANY)),
         State.FAILING_OVER, ["save failover promoting c@2", "promote c@2"], config=SYNC),
    Case("sync-any-2-of-3-needs-2",
         leaderless(standby("b", flush_lsn=900), hung(standby("c")), dead(standby("d")),
                    sync=sync("b", "c", "d", num=2, method=SyncMethod.ANY)),
         State.NO_CANDIDATE, [], config=SYNC, reason_has="need 2"),
    Case("sync-old-leader-may-win",
         leaderless(primary("a", fenced=True), standby("b", flush_lsn=900), sync=sync("b")),
         State.FAILING_OVER, ["save failover promoting a@2", "promote a@2"], config=SYNC),
    Case("sync-old-leader-of-a-stale-set-may-not-win",
         leaderless(primary("a", fenced=True), standby("b", flush_lsn=900), sync=sync("c"), term=2),
         State.NO_CANDIDATE, [], config=SYNC, reason_has="not in the synchronous set"),
    Case("sync-healthy-publishes-first-set",
         healthy(), State.HEALTHY, ["publish FIRST 1 (b)"], config=SYNC),
    Case("sync-off-clears-published-set",
         healthy(sync=sync("b")), State.HEALTHY, ["publish FIRST 0 ()"]),
    # ---------------------------------------------------------------- switchover
    Case("switchover-demotes-leader",
         healthy(switchover=SwitchoverRequest("b", "a"), term=2), State.SWITCHING_OVER,
         ["save switchover demoting b@3", "demote a@2"]),
    Case("switchover-best-when-no-candidate-named",
         healthy(primary(), standby("b", flush_lsn=900), standby("c"), switchover=SwitchoverRequest()),
         State.SWITCHING_OVER, ["save switchover demoting c@2", "demote a@1"]),
    Case("switchover-wrong-expected-leader",
         healthy(switchover=SwitchoverRequest("b", "z")), State.HEALTHY, ["clear switchover"],
         reason_has="expected leader z"),
    Case("switchover-ineligible-target",
         healthy(primary(), standby("b", nofailover=True), standby("c"), switchover=SwitchoverRequest("b")),
         State.HEALTHY, ["clear switchover"], reason_has="nofailover"),
    Case("switchover-to-leader-itself",
         healthy(switchover=SwitchoverRequest("a")), State.HEALTHY, ["clear switchover"]),
    Case("switchover-demote-repeated-while-key-held",
         healthy(failover=demoting("b", 2), switchover=SwitchoverRequest("b")), State.SWITCHING_OVER,
         ["demote a@1"]),
    Case("switchover-demote-in-progress-engine-standby",
         healthy(DEMOTED_A, standby("b"), failover=demoting("b", 2)), State.SWITCHING_OVER, ["demote a@1"]),
    Case("switchover-demote-times-out",
         healthy(failover=demoting("b", 2, since=NOW - 100), switchover=SwitchoverRequest("b")),
         State.HEALTHY, ["clear switchover", "clear failover"], reason_has="abandoned"),
    Case("switchover-waits-for-target-to-catch-up",
         leaderless(DEMOTED_A, standby("b", flush_lsn=900), failover=demoting("b", 2),
                    switchover=SwitchoverRequest("b")),
         State.SWITCHING_OVER, [], reason_has="catch up"),
    Case("switchover-waits-for-old-primary-final-lsn-even-if-it-vanished",
         leaderless(dead(standby("a", upstream="", streaming=False, flush_lsn=1200)), standby("b"),
                    failover=demoting("b", 2), switchover=SwitchoverRequest("b")),
         State.SWITCHING_OVER, [], reason_has="catch up to 1200"),
    Case("switchover-leader-died-during-demote-abandoned",
         healthy(dead(primary()), standby("b", streaming=False), failover=demoting("b", 2),
                 switchover=SwitchoverRequest("b")),
         State.PRIMARY_SUSPECT, ["clear switchover", "clear failover"], reason_has="did not step down"),
    Case("switchover-promotes-caught-up-target",
         leaderless(DEMOTED_A, standby("b"), standby("c"), failover=demoting("c", 2),
                    switchover=SwitchoverRequest("c")),
         State.SWITCHING_OVER, ["save switchover promoting c@2", "promote c@2"]),
    Case("switchover-target-too-slow-best-wins",
         leaderless(DEMOTED_A, standby("b", flush_lsn=900), failover=demoting("b", 2, since=NOW - 100),
                    switchover=SwitchoverRequest("b")),
         State.SWITCHING_OVER, ["save switchover promoting a@2", "promote a@2"]),
    Case("switchover-target-died-best-wins",
         leaderless(DEMOTED_A, dead(standby("b")), standby("c", flush_lsn=990), failover=demoting("b", 2)),
         State.SWITCHING_OVER, ["save switchover promoting a@2", "promote a@2"]),
    Case("switchover-finished",
         ClusterSnapshot(term=2, leader=LeaderView("b", 2, 2),
                         members=(standby("a", upstream="", streaming=False), primary("b", timeline=2, term=2)),
                         failover=replace(demoting("b", 2), phase=Phase.PROMOTING),
                         switchover=SwitchoverRequest("b")),
         State.REPOINTING, ["rejoin a->b@2", "history 2 a->b lost=0", "clear switchover", "clear failover"],
         previous=State.PROMOTING),
    Case("manual-failover-with-leader-is-a-switchover",
         healthy(switchover=SwitchoverRequest("c", failover=True)), State.SWITCHING_OVER,
         ["save failover demoting c@2", "demote a@1"]),
    Case("manual-failover-no-leader-tied-candidate",
         leaderless(standby("b"), standby("c"), switchover=SwitchoverRequest("c", failover=True)),
         State.FAILING_OVER, ["save failover promoting c@2", "promote c@2", "clear switchover"]),
    Case("manual-failover-no-leader-candidate-behind",
         leaderless(standby("b"), standby("c", flush_lsn=10), switchover=SwitchoverRequest("c", failover=True)),
         State.FAILING_OVER, ["save failover promoting b@2", "promote b@2", "clear switchover"],
         config=CoreConfig(maximum_lag_on_failover=-1)),
    # ---------------------------------------------------------------- interrupted sequences
    Case("resume-promote-not-yet-taken",
         leaderless(dead(primary()), standby("b", flush_lsn=990), standby("c", flush_lsn=995),
                    term=4, failover=promoting("c", 5)),
         State.PROMOTING, ["promote c@5"]),
    Case("resume-winner-holds-new-term-only-follows",
         ClusterSnapshot(term=5, leader=LeaderView("c", 5, 2), failover=promoting("c", 5, last_lsn=1000),
                         members=(dead(primary()), standby("b", flush_lsn=990),
                                  primary("c", timeline=2, term=5, flush_lsn=995))),
         State.REPOINTING, ["rejoin b->c@5", "history 5 a->c lost=10", "clear failover"]),
    Case("resume-winner-promoted-but-engine-not-yet-primary",
         ClusterSnapshot(term=5, leader=LeaderView("c", 5, 1), failover=promoting("c", 5),
                         members=(standby("b"), standby("c", upstream="", streaming=False))),
         State.PROMOTING, []),
    Case("resume-promote-timed-out-next-candidate",
         leaderless(standby("b", flush_lsn=990), hung(standby("c", flush_lsn=995)), standby("d", flush_lsn=995),
                    term=4, failover=promoting("d", 5, since=NOW - 100)),
         State.PROMOTING, ["save failover promoting b@5", "promote b@5"]),
    Case("resume-winner-vanished-rerank",
         leaderless(standby("b", flush_lsn=990), dead(standby("c", flush_lsn=995)), term=4,
                    failover=promoting("c", 5)),
         State.PROMOTING, ["save failover promoting b@5", "promote b@5"]),
    Case("resume-all-attempted-retry-from-scratch",
         leaderless(standby("b", flush_lsn=990), term=4, failover=promoting("b", 5, since=NOW - 100)),
         State.PROMOTING, ["save failover promoting b@5", "promote b@5"]),
    Case("stale-record-term-taken-fresh-failover",
         leaderless(standby("b", flush_lsn=990), term=5, failover=promoting("c", 5)),
         State.FAILING_OVER, ["save failover promoting b@6", "promote b@6"]),
    Case("stale-record-for-later-term-dropped",
         healthy(failover=promoting("c", 7)), State.HEALTHY, ["clear failover"], reason_has="stale"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    d = decide(case.snapshot, case.config, case.now, previous=case.previous)
    assert (d.state, summary(d)) == (case.state, case.actions), d.reason
    assert case.reason_has in d.reason
    assert d.actions, "a decision always carries at least one action (Wait)"


def test_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_decide_is_deterministic() -> None:
    for case in CASES:
        a = decide(case.snapshot, case.config, case.now, previous=case.previous)
        b = decide(case.snapshot, case.config, case.now, previous=case.previous)
        assert a == b, case.id


def test_transition_logged_only_on_change() -> None:
    d = decide(healthy(), C, NOW, previous=State.HEALTHY)
    assert d.transition is None
    d = decide(leaderless(standby("b")), C, NOW, previous=State.PRIMARY_SUSPECT)
    assert str(d.transition).startswith("primary_suspect -> failing_over: ")


def test_history_receipt_lists_every_candidate_with_why_it_lost() -> None:
    snap = leaderless(dead(primary()), standby("b", flush_lsn=990), standby("c", flush_lsn=995),
                      standby("d", nofailover=True), last_known_primary_lsn=1000)
    first = decide(snap, C, NOW)
    fs = first.actions[0].state
    done = ClusterSnapshot(term=2, leader=LeaderView("c", 2, 2), failover=fs,
                           members=(standby("b", upstream="c", timeline=2),
                                    primary("c", timeline=2, term=2, flush_lsn=995)))
    entry = decide(done, C, NOW + 5).actions[-2].entry
    assert (entry.last_primary_lsn, entry.promoted_lsn, entry.bytes_possibly_lost) == (1000, 995, 5)
    assert (entry.old_leader, entry.new_leader, entry.started_at, entry.finished_at) == ("a", "c", NOW, NOW + 5)
    by_name = {c.name: c for c in entry.candidates}
    assert by_name["c"].rank == 1 and by_name["b"].rank == 2 and "5 bytes behind" in by_name["b"].reason
    assert by_name["a"].exclusion.value == "agent_down" and by_name["d"].exclusion.value == "nofailover"


def test_cascade_bound_survives_a_crash_between_save_and_promote() -> None:
    """The leader of term 2 (c) died before publishing its own set; b flushed
    c's promote LSN, so b may win although the stale set names only c. The
    record saved for term 3 carries that bound: a successor that finds the
    record but no new leader (crash before Promote) still promotes b."""
    fs = FailoverState(OperationKind.FAILOVER, Phase.PROMOTING, 2, "a", "c", 900, 900, 1000, (),
                       (Candidate("c", 1000, 1, 0, True, 1),))
    snap = leaderless(dead(primary("c", timeline=2)), standby("b", streaming=False),
                      standby("a", flush_lsn=900, streaming=False), term=2, failover=fs,
                      sync=sync("c", leader="a", term=1))
    first = decide(snap, SYNC, NOW)
    assert summary(first) == ["save failover promoting b@3", "promote b@3"]
    saved = first.actions[0].state
    assert saved.ack_bound == 1000 and FailoverState.from_dict(saved.to_dict()) == saved
    again = decide(replace(snap, failover=saved), SYNC, NOW + 1, previous=State.STARTING)
    assert summary(again) == ["promote b@3"], again.reason


def test_the_sync_set_is_published_before_members_are_repointed() -> None:
    """A Rejoin of an old primary may take up to the RPC timeout; commits on
    the new leader must not wait behind it for their synchronous set."""
    snap = healthy(primary(term=2, timeline=2), standby("b", timeline=2, term=2),
                   primary("c", timeline=1), term=2)
    d = decide(snap, SYNC, 100.0, previous=State.HEALTHY)
    got = summary(d)
    assert got[0].startswith("publish") and any(s.startswith("rejoin c") for s in got), got
