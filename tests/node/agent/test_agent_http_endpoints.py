"""The HTTP API and the role-aware gRPC health on real agents (``walrus
node`` subprocesses, embedded engine, real etcd): the primary answers 200 on
/primary and SERVING for walrus.primary, standbys 503 / NOT_SERVING and 200 /
SERVING for the replica checks; reflection lists the services of both ports."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agent_procs import TIMING, wait_for
from test_agent_cluster import leader_gone, promote
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import SyncRecord

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def get(agent, path, method="GET"):
    req = urllib.request.Request(agent.api_url + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def code(agent, path, method="GET"):
    return get(agent, path, method)[0]


def health(agent, address, service):
    stub = health_pb2_grpc.HealthStub(agent.channel(address))
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def reflected(agent, address):
    stub = reflection_pb2_grpc.ServerReflectionStub(agent.channel(address))
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return {s.name for r in replies for s in r.list_services_response.service}


@pytest.fixture
def three(agents):
    for n in ("a", "b", "c"):
        agents.add(n)
    primary = agents.wait_primary()
    standbys = [a for a in agents.all.values() if a is not primary]
    for s in standbys:
        agents.wait_standby_of(s.name, primary.name)
    return primary, standbys


def test_endpoints_on_primary_and_standbys(three, agents, etcd):
    primary, standbys = three
    wait_for(lambda: code(primary, "/primary") == 200, what="primary 200 on /primary")
    for path in ("/", "/leader", "/master", "/read-write", "/read-only", "/health", "/liveness",
                 "/readiness", "/status"):
        assert code(primary, path) == 200, path
    for path in ("/replica", "/sync", "/async"):
        assert code(primary, path) == 503, path
    assert code(primary, "/primary", "HEAD") == 200 and code(primary, "/primary", "OPTIONS") == 200
    for s in standbys:
        wait_for(lambda s=s: code(s, "/replica") == 200, what=f"{s.name} 200 on /replica")
        for path in ("/read-only", "/async", "/health", "/liveness", "/readiness", "/status",
                     "/replica?lag=10MB"):
            assert code(s, path) == 200, (s.name, path)
        for path in ("/primary", "/", "/leader", "/read-write", "/sync"):
            assert code(s, path) == 503, (s.name, path)
        assert code(s, "/primary", "HEAD") == 503 and code(s, "/replica?lag=junk") == 400
    doc = json.loads(get(primary, "/status")[1])
    assert doc["name"] == primary.name and doc["http"] == primary.api_url and doc["holds_leader"]
    assert doc["engine"]["role"] == "primary" and doc["primary"] is True
    # The published sync set decides /sync and /async.
    sync_member, other = standbys
    with Dcs([etcd.endpoint], agents.cluster) as dcs:
        assert dcs.set_sync(SyncRecord("first", 1, (sync_member.name,), primary.name, 1), 0)
        view = dcs.read_view()
    wait_for(lambda: code(sync_member, "/sync") == 200, what="sync member 200 on /sync")
    assert code(sync_member, "/async") == 503
    assert code(other, "/sync") == 503 and code(other, "/async") == 200
    assert {m.name: m.api_url for m in view.members} == {a.name: a.api_url for a in agents.all.values()}


def test_grpc_health_is_role_aware_on_both_ports(three):
    primary, standbys = three
    for a in (primary, *standbys):
        for address in (a.agent_address, a.data_address):
            assert health(a, address, "") == SERVING
    wait_for(lambda: health(primary, primary.agent_address, "walrus.primary") == SERVING,
             what="walrus.primary SERVING on the primary")
    assert health(primary, primary.data_address, "walrus.primary") == SERVING
    assert health(primary, primary.agent_address, "walrus.replica") == NOT_SERVING
    for s in standbys:
        wait_for(lambda s=s: health(s, s.agent_address, "walrus.replica") == SERVING,
                 what=f"walrus.replica SERVING on {s.name}")
        for address in (s.agent_address, s.data_address):
            assert health(s, address, "walrus.primary") == NOT_SERVING
        assert health(s, s.data_address, "walrus.replica") == SERVING
    with pytest.raises(grpc.RpcError) as err:
        health(primary, primary.agent_address, "walrus.nonsense")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert {"walrus.v1.NodeAgent", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= reflected(primary, primary.agent_address)
    assert {"walrus.v1.Store", "walrus.v1.WalStream",
            "grpc.health.v1.Health"} <= reflected(primary, primary.data_address)


def test_killed_primary_moves_200_to_the_promoted_standby(three, agents, etcd):
    old, (b, c) = three
    wait_for(lambda: code(old, "/primary") == 200, what="old primary 200")
    old.kill()
    wait_for(lambda: leader_gone(etcd, agents.cluster), timeout=TIMING["ttl"] + 20, what="leader lease expiry")
    assert code(b, "/primary") == 503
    assert promote(b, 2).changed
    wait_for(lambda: code(b, "/primary") == 200, what="promoted standby 200 on /primary")
    assert code(b, "/replica") == 503
    wait_for(lambda: health(b, b.agent_address, "walrus.primary") == SERVING, what="walrus.primary follows")
    agents.wait_standby_of(c.name, b.name)
    wait_for(lambda: code(c, "/replica") == 200, what="other standby 200 on /replica under the new primary")
    assert code(c, "/primary") == 503
