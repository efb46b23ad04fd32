"""The Cluster service in process against a real etcd (no agents needed):
leader reads and the WatchLeader stream, operator requests and their
validation, history, members/explain with unreachable agents, etcd down ->
UNAVAILABLE; and the ``walrus orchestrator`` command's bad-config exit.
"""
from __future__ import annotations

import queue
import subprocess
import sys
import threading

import grpc
import pytest

from orch_procs import wait_for
from walrus_ha.common import grpcutil
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import HistoryRecord, LeaderRecord, MemberRecord
from walrus_ha.orchestrator.config import OrchestratorConfig
from walrus_ha.orchestrator.controller import Controller
from walrus_ha.orchestrator.service import ClusterService, LeaderWatch
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc
from walrus_ha.tools.etcd_server import free_port


@pytest.fixture
def served(etcd, cluster_name):
    """(stub, dcs): a ClusterService on a free port over the test's etcd; not active."""
    config = OrchestratorConfig(id="o1", cluster=cluster_name, rpc_timeout=0.3, retry_timeout=0.5, ttl=3.0,
                                loop_wait=0.2)
    dcs = Dcs([etcd.endpoint], cluster_name, timeout_s=0.5)
    controller = Controller(config, dcs)
    leaders = LeaderWatch(dcs, refresh_s=0.2)
    service = ClusterService(dcs, controller, leaders, rpc_timeout=0.3)
    server = grpcutil.server(8)
    cluster_pb2_grpc.add_ClusterServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    leaders.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield cluster_pb2_grpc.ClusterStub(channel), dcs
    finally:
        channel.close()
        leaders.stop()
        server.stop(0).wait(5)
        service.close()
        controller.agents.close()
        dcs.close()


def _member(name, port):
    return MemberRecord(name=name, agent_address=f"127.0.0.1:{port}", data_address="127.0.0.1:1",
                        role="standby", timeline=1, term=1, flush_lsn=100, streaming=True)


def test_leader_watch_members_and_requests(served):
    stub, dcs = served
    assert not stub.GetLeader(cluster_pb2.GetLeaderRequest(), timeout=5).present
    with pytest.raises(grpc.RpcError) as err:
        stub.Switchover(cluster_pb2.SwitchoverRequest(candidate="b"), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    seen: queue.Queue = queue.Queue()
    call = stub.WatchLeader(cluster_pb2.WatchLeaderRequest())
    def consume():
        try:
            for m in call:
                seen.put(m)
        except grpc.RpcError:   # cancelled at the end of the test
            pass
    threading.Thread(target=consume, daemon=True).start()
    assert not seen.get(timeout=5).present

    lease = dcs.grant_lease(10)
    dead_port = free_port()                      # nobody listens: agents refuse
    for name in ("a", "b", "c"):
        dcs.put_member(lease, _member(name, dead_port))
    assert dcs.acquire_leader(lease, LeaderRecord(name="a", term=1, agent_address=f"127.0.0.1:{dead_port}"), 0) == 1
    msg = seen.get(timeout=5)
    assert msg.present and msg.name == "a" and msg.term == 1
    assert stub.GetLeader(cluster_pb2.GetLeaderRequest(), timeout=5).name == "a"

    members = stub.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5)
    assert [m.name for m in members.members] == ["a", "b", "c"]
    assert not any(m.reachable for m in members.members)
    assert members.leader.name == "a" and members.state == "spare"

    explain = stub.ExplainFailover(cluster_pb2.ExplainFailoverRequest(), timeout=5)
    assert explain.winner == "" and {c.name for c in explain.candidates} >= {"b", "c"}
    assert all(not c.eligible and c.reason for c in explain.candidates)

    # Validation of operator requests.
    for req, code in [(cluster_pb2.SwitchoverRequest(candidate="zz"), grpc.StatusCode.INVALID_ARGUMENT),
                      (cluster_pb2.SwitchoverRequest(candidate="a"), grpc.StatusCode.INVALID_ARGUMENT),
                      (cluster_pb2.SwitchoverRequest(candidate="b", expected_leader="c"),
                       grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as err:
            stub.Switchover(req, timeout=5)
        assert err.value.code() == code and err.value.details()
    # What the core would refuse is refused up front, with its reason, and nothing is written.
    for req in (cluster_pb2.SwitchoverRequest(candidate="b", expected_leader="a"),
                cluster_pb2.FailoverRequest(candidate="c")):
        with pytest.raises(grpc.RpcError) as err:
            getattr(stub, "Switchover" if isinstance(req, cluster_pb2.SwitchoverRequest) else "Failover")(
                req, timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "cannot take over: agent refused the connection" in err.value.details()
        assert dcs.read_view().switchover is None
    with pytest.raises(grpc.RpcError) as err:
        stub.Failover(cluster_pb2.FailoverRequest(candidate="c", force=True), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no leader" in err.value.details()

    assert stub.Pause(cluster_pb2.PauseRequest(), timeout=5).accepted
    assert dcs.read_view().paused
    assert stub.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).paused
    with pytest.raises(grpc.RpcError) as err:                      # nothing would act on it
        stub.Switchover(cluster_pb2.SwitchoverRequest(candidate="b"), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "paused" in err.value.details()
    assert stub.Resume(cluster_pb2.ResumeRequest(), timeout=5).accepted
    assert not dcs.read_view().paused

    # Leader gone -> the watcher hears "no leader".
    dcs.revoke_lease(lease)
    wait_for(lambda: not seen.get(timeout=5).present, what="WatchLeader reports no leader")
    call.cancel()


def test_history(served):
    stub, dcs = served
    for term in (2, 3):
        dcs.put_history(HistoryRecord(term=term, kind="failover", old_leader="a", new_leader="b",
                                      last_primary_lsn=100, promoted_lsn=90, bytes_possibly_lost=10,
                                      candidates=({"name": "b", "rank": 1, "eligible": True, "reason": "best"},)))
    reply = stub.History(cluster_pb2.HistoryRequest(limit=10), timeout=5)
    assert [r.term for r in reply.records] == [2, 3]
    assert reply.records[0].bytes_possibly_lost == 10 and reply.records[0].candidates[0].rank == 1
    assert [r.term for r in stub.History(cluster_pb2.HistoryRequest(limit=1), timeout=5).records] == [3]


def test_etcd_down_is_unavailable_with_a_sentence(served, etcd):
    stub, _ = served
    stub.GetLeader(cluster_pb2.GetLeaderRequest(), timeout=5)
    etcd.stop()
    calls = [lambda: stub.ListMembers(cluster_pb2.ListMembersRequest(), timeout=10),
             lambda: stub.Pause(cluster_pb2.PauseRequest(), timeout=10),
             lambda: stub.History(cluster_pb2.HistoryRequest(), timeout=10),
             lambda: stub.Switchover(cluster_pb2.SwitchoverRequest(candidate="b"), timeout=10)]

    def leader_unavailable():
        try:
            stub.GetLeader(cluster_pb2.GetLeaderRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAVAILABLE
        return False
    wait_for(leader_unavailable, timeout=20, what="GetLeader UNAVAILABLE once the cached leader is stale")
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "etcd" in err.value.details()


@pytest.mark.parametrize("text,key", [("id: o1\nttl: 0.5\n", "ttl"), ("id: o1\nbogus: 1\n", "bogus"),
                                      ("id: o1\nloop_wait: 5\nretry_timeout: 5\nttl: 10\n", "ttl")])
def test_bad_config_exits_with_one_clear_line(tmp_path, text, key):
    path = tmp_path / "orch.yaml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "walrus_ha", "orchestrator", "--config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert str(path) in out.stderr and key in out.stderr
