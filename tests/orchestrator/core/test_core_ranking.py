"""Candidate ranking and the ExplainFailover dry run."""
from __future__ import annotations

from core_builders import dead, healthy, hung, leaderless, primary, standby, sync
from walrus_ha.orchestrator.core import (
    Candidate,
    CoreConfig,
    Exclusion,
    FailoverState,
    OperationKind,
    Phase,
    explain,
    rank,
)


def test_order_and_reasons() -> None:
    r = rank(leaderless(standby("b", flush_lsn=990), standby("c", flush_lsn=1000, priority=1),
                        standby("d", flush_lsn=1000), standby("e", flush_lsn=1000, timeline=0)), CoreConfig())
    assert [(c.name, c.rank) for c in r.candidates] == [("c", 1), ("d", 2), ("b", 3), ("e", 4)]
    assert r.winner == "c"
    assert "lower priority" in r.get("d").reason and "10 bytes behind" in r.get("b").reason
    assert "older than the winner's" in r.get("e").reason


def test_every_exclusion_has_its_reason() -> None:
    snap = leaderless(dead(standby("b")), hung(standby("c")), standby("d", nofailover=True),
                      standby("e", needs_reclone=True), standby("f", flush_lsn=0), standby("g", has_member_key=False),
                      standby("h", role=standby("x").role.STOPPED), last_known_primary_lsn=1000)
    r = rank(snap, CoreConfig(maximum_lag_on_failover=10))
    got = {c.name: c.exclusion for c in r.candidates}
    assert got == {"b": Exclusion.AGENT_DOWN, "c": Exclusion.UNREACHABLE, "d": Exclusion.NOFAILOVER,
                   "e": Exclusion.NEEDS_RECLONE, "f": Exclusion.LAG, "g": Exclusion.NO_MEMBER_KEY,
                   "h": Exclusion.ENGINE_STOPPED}
    assert r.winner is None and all(c.reason and c.rank == 0 and not c.eligible for c in r.candidates)
    assert "f: 1000 bytes behind" in r.waiting


def test_sync_exclusion_names_the_set() -> None:
    cfg = CoreConfig(synchronous_mode=True)
    r = rank(leaderless(standby("b"), standby("c"), sync=sync("b")), cfg)
    assert r.winner == "b" and r.get("c").exclusion is Exclusion.NOT_IN_SYNC_SET
    assert "FIRST 1 (b)" in r.get("c").reason


def test_explain_with_leader_excludes_it() -> None:
    r = explain(healthy(primary(), standby("b", flush_lsn=990), standby("c")), CoreConfig())
    assert r.winner == "c" and r.get("a").exclusion is Exclusion.OLD_LEADER


def test_explain_without_leader_honours_failed_attempts() -> None:
    fs = FailoverState(OperationKind.FAILOVER, Phase.PROMOTING, 2, "a", "c", attempted=("c",))
    r = explain(leaderless(standby("b", flush_lsn=990), standby("c"), failover=fs), CoreConfig())
    assert r.winner == "b" and r.get("c").exclusion is Exclusion.PROMOTE_FAILED


def test_lag_is_measured_from_the_best_member_when_primary_lsn_unknown() -> None:
    r = rank(leaderless(standby("b", flush_lsn=5000), standby("c", flush_lsn=100)),
             CoreConfig(maximum_lag_on_failover=1000))
    assert r.winner == "b" and r.get("c").exclusion is Exclusion.LAG


def test_candidate_and_failover_state_round_trip() -> None:
    c = Candidate("b", 10, 2, 1, False, 0, Exclusion.LAG, "far behind")
    assert Candidate.from_dict(c.to_dict()) == c
    fs = FailoverState(OperationKind.SWITCHOVER, Phase.DEMOTING, 3, "a", "b", 1.5, 2.5, 99, ("c",), (c,), "why")
    assert FailoverState.from_dict(fs.to_dict()) == fs
    assert FailoverState.from_dict({"kind": "nonsense"}) is None and FailoverState.from_dict(None) is None
