"""etcd loses its data while every member keeps its own (issue 10, item 3).

Real processes: etcd, three ``walrus node`` agents (embedded engine) and a
``walrus orchestrator``. etcd is stopped, its data directory removed, and it
starts again empty on the same address. The cluster must come back by itself:
the most advanced member leads again at a term above every term any member
has seen, the others stream from it, and no acknowledged write is lost.
"""
from __future__ import annotations

import shutil
import threading

import grpc
import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import store_pb2

pytestmark = pytest.mark.integration


def _wipe(etcd) -> None:
    etcd.stop()
    shutil.rmtree(etcd.data_dir)
    etcd.start()


def _new_primary(procs, term_before: int, timeout: float = 40.0):
    """The one unfenced primary holding the leader key at a term above ``term_before``."""
    def one():
        p = procs.primary(timeout=2.0)
        return p if p.status().leader_term > term_before else None
    return wait_for(one, timeout, what=f"a primary at a term above {term_before}",
                    retry_on=(grpc.RpcError, AssertionError))


def _write_until(agents, acked: list[bytes], stop: threading.Event, prefix: str) -> None:
    """Write to whichever agent accepts (the primary; standbys refuse), so a
    slow machine's unrelated failover before the wipe does not end the test."""
    i, n = 0, 0
    while not stop.is_set():
        key = f"{prefix}{i:05d}".encode()
        try:
            agents[n % len(agents)].put(key, b"v", timeout=2.0, level=store_pb2.COMMIT_ON)
        except grpc.RpcError:
            n += 1
            stop.wait(0.01)
            continue
        acked.append(key)
        i += 1


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_emptied_etcd_is_reseeded_by_the_most_advanced_member(procs, etcd, sync):
    primary, _ = procs.cluster3()
    orch = procs.orchestrator("o1", synchronous_mode=sync)
    wait_for(lambda: orch.leader().name == primary.name, timeout=90, what="orchestrator reports the leader")
    if sync:
        wait_for(lambda: primary.status().engine.sync_standbys, what="the primary applies the sync set")

    acked: list[bytes] = []
    stop = threading.Event()
    writer = threading.Thread(target=_write_until, args=(list(procs.agents.values()), acked, stop, "w"),
                              daemon=True)
    writer.start()
    wait_for(lambda: len(acked) >= 30, timeout=60, what="acknowledged writes")
    if not sync:
        stop.set()
        writer.join(10)
        for s in procs.agents.values():   # asynchronous: nothing acknowledged may be lost once replicated
            wait_for(lambda: s.get(acked[-1]).value == b"v", what=f"writes replicated to {s.name}")
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        term_before = dcs.read_view().term

    _wipe(etcd)
    stop.set()
    writer.join(10)

    new = _new_primary(procs, term_before)
    for s in procs.agents.values():
        if s is not new:
            procs.standby_of(s.name, new.name, timeout=40)
    term_after = new.status().leader_term
    wait_for(lambda: orch.leader().term == term_after, what="orchestrator reports the new leader")
    missing = [k for k in acked if new.get(k).value != b"v"]
    assert missing == []
    new.put(b"after-wipe", b"1", level=store_pb2.COMMIT_ON)
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        view = dcs.read_view()
    assert view.term == term_after and view.initialize is not None
    recs = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="a history record after the re-seed")
    assert recs[-1].term == term_after and recs[-1].new_leader == new.name


def test_failover_request_left_in_emptied_etcd_is_answered(procs, etcd):
    """A failover request written to the emptied etcd before any orchestrator
    acts on it is honoured (the candidate is as advanced as any member), not
    left sitting there."""
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, timeout=90, what="orchestrator reports the leader")
    for s in standbys:
        wait_for(lambda: s.status().engine.flush_lsn >= primary.status().engine.flush_lsn,
                 what=f"{s.name} caught up")
    orch.stop()
    _wipe(etcd)
    target = standbys[0]
    term_before = primary.status().leader_term
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        assert dcs.cas_put(dcs.keys.switchover, {"candidate": target.name, "expected_leader": "", "leader": "",
                                                  "failover": True, "requested_at": 0.0}, 0)
        procs.orchestrator("o2")
        new = _new_primary(procs, term_before)
        assert new is target
        wait_for(lambda: dcs.read_view().switchover is None, what="the failover request cleared")


def test_empty_node_does_not_bootstrap_a_second_cluster_after_a_wipe(procs, etcd):
    """A node with an empty data dir that meets the emptied keyspace (no
    leader, no ``initialize``) must not bootstrap a second, empty cluster
    beside the members that hold data: it waits, the orchestrator re-seeds,
    one of the members with data leads, and the new node clones from it.
    No orchestrator runs during the wipe, so nothing else could stop it."""
    primary, standbys = procs.cluster3()
    primary.put(b"before-wipe", b"1", level=store_pb2.COMMIT_ON)
    for s in standbys:
        wait_for(lambda: s.get(b"before-wipe").value == b"1", what=f"the key replicated to {s.name}")
    term_before = primary.status().leader_term
    _wipe(etcd)
    newcomer = procs.agent("d", bootstrap_wait=2.0)    # the default for ttl 3 is 1.5 s; the suite uses 0.3
    wait_for(lambda: "not bootstrapping a second cluster" in newcomer.log_text(), timeout=30,
             what="the empty node to refuse to bootstrap")
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        view = dcs.read_view()
    assert view.initialize is None and (view.leader is None or view.leader.name != "d")
    procs.orchestrator("o1")
    new = _new_primary(procs, term_before)
    assert new.name in ("a", "b", "c")
    procs.standby_of("d", new.name)
    assert newcomer.get(b"before-wipe").value == b"1"
