"""Hot spares: the active orchestrator dies in the middle of a failover and
the spare finishes the job from the in-flight state saved in etcd; a stopped
(SIGTERM) orchestrator hands over at once by revoking its lease.
"""
from __future__ import annotations

import pathlib
import signal
import sys

import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from support_dcs import current_orchestrator
from walrus_ha.common.dcs import Dcs

pytestmark = pytest.mark.integration


def active(etcd, cluster):
    with Dcs([etcd.endpoint], cluster) as dcs:
        return current_orchestrator(dcs)


def failover_state(etcd, cluster):
    with Dcs([etcd.endpoint], cluster) as dcs:
        return dcs.read_view().failover


def test_spare_finishes_a_failover_the_active_one_died_in(procs, etcd, tmp_path):
    primary, standbys = procs.cluster3()
    marker = tmp_path / "hung"
    hang = pathlib.Path(__file__).with_name("hang_after_failover_state.py")
    o1 = procs.orchestrator("o1", launcher=[sys.executable, str(hang), str(marker)])
    wait_for(lambda: active(etcd, procs.cluster) == "o1", what="o1 active")
    o2 = procs.orchestrator("o2")
    wait_for(lambda: o2.leader().name == primary.name, what="o2 serves GetLeader")

    primary.kill()
    wait_for(marker.exists, timeout=30, what="o1 saved the in-flight failover state")
    state = failover_state(etcd, procs.cluster)
    assert state and state["term"] == 2 and state["phase"] == "promoting"
    o1.kill()                                  # dies mid-failover, before Promote

    wait_for(lambda: active(etcd, procs.cluster) == "o2", timeout=20, what="o2 takes over")
    new = procs.primary(names=[s.name for s in standbys], timeout=30)
    assert new.name == state["new_leader"]     # the same operation was finished
    other = next(s for s in standbys if s is not new)
    procs.standby_of(other.name, new.name, timeout=30)
    rec = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="history")[-1]
    assert (rec.term, rec.new_leader, rec.orchestrator) == (2, new.name, "o2")
    wait_for(lambda: failover_state(etcd, procs.cluster) is None, what="in-flight state cleared")


def test_sigterm_hands_over_to_the_spare_which_then_fails_over(procs, etcd):
    primary, standbys = procs.cluster3()
    o1 = procs.orchestrator("o1", ttl=30.0)    # a long lease: only a revoke makes a quick handover
    wait_for(lambda: active(etcd, procs.cluster) == "o1", what="o1 active")
    o2 = procs.orchestrator("o2", ttl=30.0)
    wait_for(lambda: o2.leader().present, what="o2 serving")
    o1.signal(signal.SIGTERM)
    o1.proc.wait(timeout=20)
    assert o1.proc.returncode == 0
    # Well before o1's 30 s lease could expire, o2 is active.
    wait_for(lambda: active(etcd, procs.cluster) == "o2", timeout=10, what="o2 active after o1's SIGTERM")
    primary.kill()
    new = procs.primary(names=[s.name for s in standbys], timeout=30)
    other = next(s for s in standbys if s is not new)
    procs.standby_of(other.name, new.name, timeout=30)
    assert o2.leader().name == new.name


def test_orchestrators_survive_an_etcd_restart(procs, etcd):
    primary, standbys = procs.cluster3()
    o1, o2 = procs.orchestrator("o1"), procs.orchestrator("o2")
    wait_for(lambda: o1.leader().present and o2.leader().present, what="both orchestrators serving")
    etcd.stop()
    etcd.start()
    wait_for(lambda: o1.leader().present and o2.leader().present, timeout=20, what="leader visible again")
    wait_for(lambda: active(etcd, procs.cluster) in ("o1", "o2"), timeout=20, what="an active orchestrator")
    current = procs.primary(timeout=30)
    current.kill()
    rest = [a for a in procs.agents.values() if a is not current]
    new = procs.primary(names=[a.name for a in rest], timeout=30)
    other = next(a for a in rest if a is not new)
    procs.standby_of(other.name, new.name, timeout=30)
