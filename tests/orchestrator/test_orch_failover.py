"""Automatic failover with real processes: etcd, three ``walrus node`` agents
(embedded engine) and ``walrus orchestrator``, all on free loopback ports.

kill -9 of the primary's agent -> the orchestrator promotes the most advanced
standby, repoints the other, writes history with the RPO receipt; a
WatchLeader subscriber hears of it; the restarted old primary rejoins as a
standby and never accepts writes on its own.
"""
from __future__ import annotations

import queue
import signal
import threading

import grpc
import pytest

from orch_procs import ROLE_STANDBY, history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.protos import cluster_pb2, store_pb2

pytestmark = pytest.mark.integration


def _watch_leaders(orch, out: queue.Queue, ready: threading.Event):
    call = orch.cluster.WatchLeader(cluster_pb2.WatchLeaderRequest())

    def run():
        try:
            for msg in call:
                out.put(msg)
                ready.set()
        except grpc.RpcError:
            pass
    threading.Thread(target=run, daemon=True).start()
    return call


def test_kill_primary_promotes_standby_and_old_primary_rejoins(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")

    leaders: queue.Queue = queue.Queue()
    ready = threading.Event()
    call = _watch_leaders(orch, leaders, ready)
    assert ready.wait(10), "WatchLeader sent nothing"
    first = leaders.get_nowait()
    assert first.present and first.name == primary.name and first.term == 1

    acked = []
    for i in range(20):
        key = f"k{i}".encode()
        primary.put(key, b"v", level=store_pb2.COMMIT_ON)
        acked.append(key)

    # Asynchronous replication: wait until both standbys have the writes, so
    # none can be lost (the synchronous-mode test below does not wait).
    for s in standbys:
        wait_for(lambda: s.get(acked[-1]).value == b"v", what=f"writes replicated to {s.name}")
    primary.kill()
    rest = [a.name for a in standbys]
    new = procs.primary(names=rest, timeout=30)
    other = next(a for a in standbys if a is not new)
    procs.standby_of(other.name, new.name, timeout=30)

    # A WatchLeader subscriber saw the new leader (maybe after a "no leader" message).
    seen = wait_for(lambda: _drain_until(leaders, new.name), timeout=10, what="WatchLeader reports the new leader")
    assert seen.term == 2
    call.cancel()

    # History with the RPO receipt.
    recs = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="history record")
    rec = recs[-1]
    assert (rec.term, rec.kind, rec.old_leader, rec.new_leader) == (2, "failover", primary.name, new.name)
    assert rec.promoted_lsn >= rec.last_primary_lsn > 0 and rec.bytes_possibly_lost == 0
    assert {c["name"] for c in rec.candidates} >= set(rest)
    assert rec.orchestrator == "o1"

    # Synchronously committed writes survived on the new primary.
    for key in acked:
        assert new.get(key).value == b"v"
    new.put(b"after", b"1", level=store_pb2.COMMIT_ON)

    # The old primary comes back: it rejoins as a standby, never accepts writes.
    primary.start()
    procs.standby_of(primary.name, new.name, timeout=40)
    with pytest.raises(grpc.RpcError) as err:
        primary.put(b"nope", b"1")
    assert err.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE)
    wait_for(lambda: primary.get(b"after").value == b"1", what="old primary replays the new primary's WAL")
    assert primary.status().engine.role == ROLE_STANDBY


def _drain_until(q: queue.Queue, name: str):
    while True:
        try:
            msg = q.get_nowait()
        except queue.Empty:
            return None
        if msg.present and msg.name == name:
            return msg


def test_synchronous_mode_kill_during_writes_loses_no_acknowledged_write(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1", synchronous_mode=True, synchronous_node_count=1)
    wait_for(lambda: orch.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).sync_standbys,
             what="a published sync set")
    wait_for(lambda: primary.status().engine.sync_standbys, what="the primary applies the sync set")
    acked: list[bytes] = []
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            key = f"s{i:05d}".encode()
            try:
                primary.put(key, b"v", timeout=2.0, level=store_pb2.COMMIT_ON)
            except grpc.RpcError:
                return                      # the primary is gone
            acked.append(key)
            i += 1
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    wait_for(lambda: len(acked) >= 50, what="synchronous writes acknowledged")
    primary.kill()
    writer.join(10)
    stop.set()
    new = procs.primary(names=[s.name for s in standbys], timeout=30)
    missing = [k for k in acked if new.get(k).value != b"v"]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost, e.g. {missing[:3]}"
    rec = wait_for(lambda: history(etcd.endpoint, procs.cluster), what="history record")[-1]
    assert rec.new_leader == new.name and rec.bytes_possibly_lost == 0


def test_frozen_primary_is_replaced_after_its_lease_and_rejoins(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    wait_for(lambda: orch.leader().name == primary.name, what="orchestrator reports the leader")
    primary.signal(signal.SIGSTOP)          # hung, not dead: its port still accepts connections
    try:
        new = procs.primary(names=[s.name for s in standbys], timeout=30)
        assert orch.leader().name == new.name and orch.leader().term == 2
    finally:
        primary.signal(signal.SIGCONT)
    procs.standby_of(primary.name, new.name, timeout=40)
    st = primary.status()
    assert st.engine.role == ROLE_STANDBY and not st.holds_leader
