"""Cascading failure with real processes: the primary is SIGKILLed, and the
new primary is SIGKILLed the moment its leader key appears (before the
orchestrator repointed the third node or published a synchronous set for
it). The third node must become an unfenced primary (no stall: neither
"no synchronous set is published" nor a leader key it cannot use), with
every acknowledged write.
"""
from __future__ import annotations

import time

import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import store_pb2

pytestmark = pytest.mark.integration


def _leader(dcs: Dcs):
    v = dcs.read_view()
    return (v.leader.name, v.leader.term) if v.leader else (None, v.term)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_new_primary_killed_right_after_promotion(procs, etcd, sync):
    first, standbys = procs.cluster3()
    procs.orchestrator("o1", synchronous_mode=sync)
    acked = []
    for i in range(20):
        key = f"k{i}".encode()
        wait_for(lambda: first.put(key, b"v", level=store_pb2.COMMIT_ON), timeout=20, what=f"write {i} acked")
        acked.append(key)
    for s in standbys:
        wait_for(lambda: s.get(acked[-1]).found, what=f"writes replicated to {s.name}")
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        if sync:
            wait_for(lambda: (v := dcs.read_view()).sync is not None and v.sync.num == 1,
                     what="a synchronous set is published")
        first.kill()
        deadline = time.monotonic() + 30
        while (name := _leader(dcs)[0]) in (None, first.name):
            assert time.monotonic() < deadline, "no failover after the first kill"
            time.sleep(0.005)
        second = procs.agents[name]
        second.kill()
    third = next(s for s in standbys if s is not second)
    assert procs.primary(names=[third.name], timeout=60) is third
    for key in acked:
        assert third.get(key).found, f"acknowledged write {key!r} lost"
    wait_for(lambda: any(h.new_leader == third.name for h in history(etcd.endpoint, procs.cluster)),
             what="the last failover's history record")
