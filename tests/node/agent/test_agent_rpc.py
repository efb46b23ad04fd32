"""The NodeAgent gRPC surface of one real agent: argument checks, stale terms,
idempotence, WatchStatus, Health, Demote; and ``walrus node`` config errors."""
from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent_procs import ROLE_PRIMARY, ROLE_STANDBY, wait_for
from walrus_ha.common.rpcerrors import Reason, reason_of
from walrus_ha.orchestrator.agents import classify
from walrus_ha.orchestrator.probe import ProbeOutcome
from walrus_ha.protos import node_agent_pb2 as pb

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("rpc,request_,words", [
    ("Promote", pb.PromoteRequest(term=0), "term must be a positive integer"),
    ("Demote", pb.DemoteRequest(term=0), "term must be a positive integer"),
    ("Follow", pb.FollowRequest(term=1, leader_name="", leader_data_address="127.0.0.1:1"), "leader_name"),
    ("Follow", pb.FollowRequest(term=1, leader_name="b", leader_data_address="nohost"), "host:port"),
    ("Follow", pb.FollowRequest(term=1, leader_name="b", leader_data_address=""), "leader_data_address"),
    ("Rejoin", pb.RejoinRequest(term=0, leader_name="b", leader_data_address="127.0.0.1:1"), "term"),
    ("Rejoin", pb.RejoinRequest(term=1, leader_name="a/b", leader_data_address="127.0.0.1:1"), "leader_name"),
])
def test_bad_arguments_are_invalid_argument(single, rpc, request_, words):
    with pytest.raises(grpc.RpcError) as err:
        getattr(single.agent, rpc)(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(err.value) is Reason.INVALID_ARGUMENT
    assert words in err.value.details()


def test_leader_rpcs(single):
    a = single
    st = a.status()
    assert st.holds_leader and st.leader_term == 1 and st.engine.role == ROLE_PRIMARY
    assert st.lease_remaining_s > 0 and st.state == "primary"
    # Idempotent Promote at the held term; a newer term while holding is refused.
    assert not a.agent.Promote(pb.PromoteRequest(term=1), timeout=5).changed
    with pytest.raises(grpc.RpcError) as err:
        a.agent.Promote(pb.PromoteRequest(term=2), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err.value) is Reason.REFUSED
    # A leader does not follow anyone.
    with pytest.raises(grpc.RpcError) as err:
        a.agent.Follow(pb.FollowRequest(term=1, leader_name="x", leader_data_address="127.0.0.1:9"), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err.value) is Reason.REFUSED
    # Health service.
    health = health_pb2_grpc.HealthStub(a.channel(a.agent_address))
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    # WatchStatus streams.
    stream = a.agent.WatchStatus(pb.WatchStatusRequest(min_interval_s=0.05), timeout=5)
    first = next(stream)
    assert first.name == "a" and first.holds_leader
    stream.cancel()
    with pytest.raises(grpc.RpcError) as err:
        next(a.agent.WatchStatus(pb.WatchStatusRequest(min_interval_s=-1), timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(err.value) is Reason.INVALID_ARGUMENT
    # Demote (switchover): fenced, leader key released, stale Promote refused afterwards.
    reply = a.agent.Demote(pb.DemoteRequest(term=1, reason="switchover test"), timeout=15)
    assert reply.changed and not reply.status.holds_leader
    assert reply.status.engine.role == ROLE_STANDBY and "final flush LSN" in reply.detail
    assert not a.agent.Demote(pb.DemoteRequest(term=1), timeout=15).changed
    with pytest.raises(grpc.RpcError) as err:
        a.agent.Promote(pb.PromoteRequest(term=1), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "stale term 1, current 1" in err.value.details()
    assert reason_of(err.value) is Reason.STALE_TERM       # the code in the contract, not the words
    # The store of a standby refuses writes: WRONG_ROLE.
    with pytest.raises(grpc.RpcError) as err:
        a.put(b"k", b"on a standby")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err.value) is Reason.WRONG_ROLE
    # It can be promoted again with the next term (no one else is there).
    assert a.agent.Promote(pb.PromoteRequest(term=2), timeout=15).changed
    wait_for(lambda: a.put(b"k", b"v").term == 2, what="writes at term 2")


def test_a_killed_agent_is_refused_by_its_port_and_a_live_one_is_not(single):
    a = single
    with pytest.raises(grpc.RpcError) as err:      # an error from the live agent: it answered
        a.agent.Promote(pb.PromoteRequest(term=0), timeout=5)
    assert classify(err.value, a.agent_address) is ProbeOutcome.ERROR
    a.kill()
    with pytest.raises(grpc.RpcError) as err:
        a.agent.GetStatus(pb.GetStatusRequest(), timeout=5)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE and reason_of(err.value) is Reason.UNSPECIFIED
    assert classify(err.value, a.agent_address) is ProbeOutcome.REFUSED      # decided by a TCP connect


@pytest.fixture
def single(agents):
    a = agents.add("a")
    agents.wait_primary()
    return a


@pytest.mark.parametrize("text,words", [
    ("name: a\ndata_dir: /tmp/x\nbogus: 1\n", "unknown key 'bogus'"),
    ("name: a\ndata_dir: /tmp/x\nttl: 2\nloop_wait: 1\nretry_timeout: 1\n", "'ttl'"),
    ("name: [a\n", "not valid YAML"),
])
def test_bad_config_file_exits_with_a_clear_error(tmp_path, text, words):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "walrus_ha", "node", "--config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert str(path) in out.stderr and words in out.stderr
    assert "Traceback" not in out.stderr
