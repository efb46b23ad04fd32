"""gRPC health and reflection on the orchestrator's port (real processes):
``walrus.orchestrator.active`` SERVING only on the active orchestrator and
moving to the spare when it stops; ListMembers gives each member's HTTP API
URL (``http``)."""
from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from orch_procs import procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.protos import cluster_pb2

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
ACTIVE = "walrus.orchestrator.active"


def health(orch, service):
    stub = health_pb2_grpc.HealthStub(orch.channel(orch.address))
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def active(orch) -> bool:
    return health(orch, ACTIVE) == SERVING


def test_active_name_follows_the_election(procs):
    primary, _ = procs.cluster3()
    o1, o2 = procs.orchestrator("o1"), procs.orchestrator("o2")
    wait_for(lambda: health(o1, "") == SERVING and health(o2, "") == SERVING, what="both orchestrators up")
    wait_for(lambda: [active(o1), active(o2)].count(True) == 1, what="exactly one active orchestrator")
    first, spare = (o1, o2) if active(o1) else (o2, o1)
    assert health(first, "walrus.v1.Cluster") == SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(first.channel(first.address))
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    assert {"walrus.v1.Cluster", "grpc.health.v1.Health"} <= {
        s.name for r in replies for s in r.list_services_response.service}
    members = first.cluster.ListMembers(cluster_pb2.ListMembersRequest(), timeout=5).members
    assert {m.name: m.http for m in members} == {a.name: a.api_url for a in procs.agents.values()}
    first.stop()
    wait_for(lambda: active(spare), what="the spare reports active after the first stops")
