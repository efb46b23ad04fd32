"""Table-driven tests of a leader whose writes fail (disk full): ``decide``
replaces it like a switchover after ``primary_write_failure_timeout``, only
when a standby can take over, and says why otherwise (issue 10, item 9)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core_builders import healthy, leaderless, primary, standby, summary
from walrus_ha.orchestrator.core import ClusterSnapshot, CoreConfig, FailoverState, OperationKind, Phase, State, decide

NOW = 1000.0
C = CoreConfig(primary_write_failure_timeout=10.0)
FULL = "WAL append failed: WAL write at 0/5000 failed: [Errno 28] No space left on device"


def failing(since: float, **kw):
    return primary(write_error=FULL, write_error_since=since, **kw)


@dataclass
class Case:
    id: str
    snapshot: ClusterSnapshot
    state: State
    actions: list[str]
    config: CoreConfig = C
    reason_has: str = ""


CASES = [
    Case("failing-briefly-degraded-and-waits",
         healthy(failing(NOW - 3), standby("b"), standby("c")), State.DEGRADED, [],
         reason_has="a cannot write"),
    Case("failing-past-timeout-demotes-for-the-best-standby",
         healthy(failing(NOW - 11), standby("b", flush_lsn=990), standby("c")), State.SWITCHING_OVER,
         ["save failover demoting c@2", "demote a@1"], reason_has="cannot write for 11.0s"),
    Case("failing-past-timeout-no-standby-stays-degraded",
         healthy(failing(NOW - 60), standby("b", reachable=False), standby("c", nofailover=True)),
         State.DEGRADED, [], reason_has="no standby can take over"),
    Case("failing-past-timeout-but-disabled",
         healthy(failing(NOW - 60), standby("b"), standby("c")), State.DEGRADED, [],
         config=CoreConfig(primary_write_failure_timeout=0), reason_has="off"),
    Case("failing-still-repoints-standbys",
         healthy(failing(NOW - 3), standby("b"), standby("c", upstream="b")), State.REPOINTING,
         ["follow c->a@1"], reason_has="a cannot write"),
    Case("writes-work-healthy", healthy(primary(), standby("b"), standby("c")), State.HEALTHY, []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cannot_write(case: Case) -> None:
    d = decide(case.snapshot, case.config, NOW, previous=State.HEALTHY)
    assert (d.state, summary(d)) == (case.state, case.actions), d.reason
    assert case.reason_has in d.reason


def test_the_replacement_waits_for_the_old_primarys_final_flush() -> None:
    """After the Demote the key is gone: the target is promoted only once it
    holds the old primary's final flush LSN (nothing acknowledged is lost)."""
    d = decide(healthy(failing(NOW - 11), standby("b"), standby("c")), C, NOW, previous=State.HEALTHY)
    fs: FailoverState = d.actions[0].state
    assert (fs.kind, fs.phase, fs.old_leader) == (OperationKind.FAILOVER, Phase.DEMOTING, "a")
    old = standby("a", upstream="", streaming=False, flush_lsn=1200)
    behind = leaderless(old, standby(fs.new_leader, flush_lsn=1100), term=1, failover=fs)
    assert summary(decide(behind, C, NOW + 1, previous=State.SWITCHING_OVER)) == []
    caught_up = replace(behind, members=(old, standby(fs.new_leader, flush_lsn=1200)))
    assert summary(decide(caught_up, C, NOW + 2, previous=State.SWITCHING_OVER)) == [
        f"save failover promoting {fs.new_leader}@2", f"promote {fs.new_leader}@2"]
