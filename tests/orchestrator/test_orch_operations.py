"""Operator requests through the Cluster service, with real processes:
switchover to a named standby loses no acknowledged write; stale or wrong
Switchover/Failover arguments are refused with INVALID_ARGUMENT; pause stops
automatic failover and resume restarts it.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest

from orch_procs import ROLE_PRIMARY, history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.protos import cluster_pb2, store_pb2

pytestmark = pytest.mark.integration


class Writer:
    """Writes k0, k1, ... to whichever agent accepts them; remembers the acked keys."""

    def __init__(self, agents):
        self.agents = agents
        self.acked: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set():
            key = f"k{i:05d}".encode()
            for a in self.agents:
                try:
                    a.put(key, b"v", timeout=1.0, level=store_pb2.COMMIT_ON)
                except grpc.RpcError:
                    continue
                self.acked.append(key)
                i += 1
                break
            else:
                time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_switchover_to_named_standby_loses_no_acknowledged_write(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    target = standbys[0]
    with Writer([primary, *standbys]) as writer:
        wait_for(lambda: len(writer.acked) >= 20, what="writes before the switchover")
        reply = orch.cluster.Switchover(cluster_pb2.SwitchoverRequest(
            candidate=target.name, expected_leader=primary.name), timeout=5)
        assert reply.accepted
        wait_for(lambda: orch.leader().name == target.name, timeout=20, what="switchover done")
        count = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= count + 20, what="writes after the switchover")
    new = procs.primary(timeout=20)
    assert new is target
    procs.standby_of(primary.name, target.name, timeout=40)
    missing = [k for k in writer.acked if target.get(k).value != b"v"]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    rec = wait_for(lambda: [r for r in history(etcd.endpoint, procs.cluster) if r.kind == "switchover"],
                   what="switchover history")[-1]
    assert rec.new_leader == target.name and rec.old_leader == primary.name and rec.bytes_possibly_lost == 0


def test_pause_stops_automatic_failover_and_resume_restarts_it(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    assert orch.cluster.Pause(cluster_pb2.PauseRequest(), timeout=5).accepted
    wait_for(lambda: orch.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).paused,
             what="paused flag visible")
    primary.kill()
    # The leader lease expires (ttl 3 s) and nobody is promoted while paused.
    wait_for(lambda: not orch.leader().present, timeout=20, what="leader key expired")
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert not orch.leader().present
        for s in standbys:
            assert s.status().engine.role != ROLE_PRIMARY
        time.sleep(0.2)
    assert orch.cluster.Resume(cluster_pb2.ResumeRequest(), timeout=5).accepted
    new = procs.primary(names=[s.name for s in standbys], timeout=30)
    other = next(s for s in standbys if s is not new)
    procs.standby_of(other.name, new.name, timeout=30)
    assert orch.leader().name == new.name


def test_manual_failover_to_a_named_standby(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    target = standbys[1]
    assert orch.cluster.Failover(cluster_pb2.FailoverRequest(candidate=target.name), timeout=5).accepted
    wait_for(lambda: orch.leader().name == target.name, timeout=40, what="failover to the named standby")
    assert procs.primary(timeout=20) is target
    for a in (primary, standbys[0]):
        procs.standby_of(a.name, target.name, timeout=40)
    rec = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="history")[-1]
    assert (rec.kind, rec.new_leader, rec.term) == ("failover", target.name, 2)
    wait_for(lambda: orch.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).state == "healthy",
             what="cluster healthy again")

    # Stale and wrong arguments: the leader moved on from ``primary``.
    for request, words in [
        (cluster_pb2.SwitchoverRequest(candidate=standbys[0].name, expected_leader=primary.name), "expected"),
        (cluster_pb2.SwitchoverRequest(candidate="nosuch"), "unknown candidate"),
        (cluster_pb2.SwitchoverRequest(candidate=target.name), "already the leader"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            orch.cluster.Switchover(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        orch.cluster.Failover(cluster_pb2.FailoverRequest(candidate=""), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_switchover_of_a_quiet_cluster(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    keys = [f"q{i}".encode() for i in range(20)]
    for k in keys:
        primary.put(k, b"v", level=store_pb2.COMMIT_ON)
    target = standbys[0]
    assert orch.cluster.Switchover(cluster_pb2.SwitchoverRequest(candidate=target.name), timeout=5).accepted
    wait_for(lambda: orch.leader().name == target.name, timeout=40, what="switchover done")
    assert procs.primary(timeout=20) is target
    procs.standby_of(primary.name, target.name, timeout=40)
    assert all(target.get(k).value == b"v" for k in keys)
    rec = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="history")[-1]
    assert (rec.kind, rec.old_leader, rec.new_leader, rec.bytes_possibly_lost) == (
        "switchover", primary.name, target.name, 0)
