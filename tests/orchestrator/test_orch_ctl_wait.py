"""``walrus ctl switchover`` / ``failover`` against real processes (issue 10
item 12): a request the orchestrator would refuse is refused up front with
the reason and a non-zero exit (it used to print "accepted" and exit 0
while the orchestrator dropped it); an accepted one is followed to its
outcome; ``--no-wait`` returns once accepted.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from orch_procs import procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.common.dcs import Dcs

pytestmark = pytest.mark.integration


def ctl(orch, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "walrus_ha", "ctl", *args,
                           "--orchestrators", orch.address, "--timeout", "10"],
                          capture_output=True, text=True, timeout=timeout)


def test_switchover_outside_sync_set_refused_and_inside_waited_for(procs, etcd):
    primary, _ = procs.cluster3()
    orch = procs.orchestrator("o1", synchronous_mode=True)
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        view = wait_for(lambda: (v := dcs.read_view()).sync is not None and v.sync.num == 1 and v,
                        timeout=90, what="a synchronous set is published")
    in_set = view.sync.names[0]
    outside = next(n for n in procs.agents if n not in (primary.name, in_set))
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")

    refused = ctl(orch, "switchover", "--to", outside)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "not in the synchronous set" in refused.stdout + refused.stderr
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        assert dcs.read_view().switchover is None, "a refused request must not be written"

    done = ctl(orch, "switchover", "--to", in_set)
    assert done.returncode == 0, done.stdout + done.stderr
    assert orch.leader().name == in_set
    assert "done:" in done.stdout

    bad_force = ctl(orch, "failover", "--to", outside, "--force")
    assert bad_force.returncode != 0 and "--force only applies when there is no leader" in bad_force.stderr


def test_no_wait_returns_once_accepted(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    fired = ctl(orch, "switchover", "--to", standbys[0].name, "--no-wait")
    assert fired.returncode == 0 and fired.stdout.startswith("accepted:"), fired.stdout + fired.stderr
    wait_for(lambda: orch.leader().name == standbys[0].name, timeout=60, what="the switchover happens")
