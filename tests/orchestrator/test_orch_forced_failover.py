"""No member provably holds every acknowledged write, with real processes
(issue 10 item 2): a (primary) and b (its synchronous standby) acknowledged
writes while c was frozen, then both die. The orchestrator must not promote
c on its own; ``walrus ctl failover --to c`` must be refused with the reason
and the override (it used to print "accepted", exit 0 and do nothing), and
``--force`` must promote c, with a history record that says it was forced.
"""
from __future__ import annotations

import signal

import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from test_orch_ctl_wait import ctl
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import store_pb2

pytestmark = pytest.mark.integration


def test_failover_to_a_member_missing_acked_writes_needs_force(procs, etcd):
    first, _ = procs.cluster3()
    orch = procs.orchestrator("o1", synchronous_mode=True)
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        view = wait_for(lambda: (v := dcs.read_view()).sync is not None and v.sync.num == 1 and v,
                        timeout=90, what="a synchronous set is published")
    heir = procs.agents[view.sync.names[0]]
    lagging = next(a for a in procs.agents.values() if a not in (first, heir))
    lagging.signal(signal.SIGSTOP)
    try:
        for i in range(10):
            wait_for(lambda: first.put(f"k{i}".encode(), b"v", level=store_pb2.COMMIT_ON), timeout=20,
                     what=f"write {i}")
        heir.kill()
        first.kill()
    finally:
        lagging.signal(signal.SIGCONT)
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        wait_for(lambda: dcs.read_view().leader is None, timeout=30, what="the leader key is gone")
    wait_for(lambda: "--force" in orch.cluster.ExplainFailover(_explain_req(), timeout=5).detail
             or _state(orch) == "no_candidate", timeout=30, what="no candidate")

    refused = ctl(orch, "failover", "--to", lagging.name)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "--force" in refused.stderr, refused.stderr

    forced = ctl(orch, "failover", "--to", lagging.name, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert procs.primary(names=[lagging.name], timeout=60) is lagging
    record = wait_for(lambda: next((h for h in history(etcd.endpoint, procs.cluster)
                                    if h.new_leader == lagging.name), None), what="the forced failover's record")
    assert "FORCED" in record.reason


def _explain_req():
    from walrus_ha.protos import cluster_pb2
    return cluster_pb2.ExplainFailoverRequest()


def _state(orch) -> str:
    from walrus_ha.protos import cluster_pb2
    return orch.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).state
