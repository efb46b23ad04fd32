"""Issue 10, item 4 (and the agent/Cluster parts of item 14) on a real local
cluster (``walrus cluster up``: etcd, 2 agents, 2 orchestrators), on both
engines: a term or upstream etcd does not vouch for is refused and nothing is
persisted, the standby keeps streaming, and a switchover to it still works.

Before the fix ``Follow(term=2**64-1)`` was accepted and persisted: the
embedded standby never streamed again, and on PostgreSQL a later switchover to
it left the cluster without a primary (its Promote(term=3) was "stale")."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import grpc
import pytest

from support_procs import ROLE_PRIMARY, ROLE_STANDBY, channel
from support_wait import wait_for
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc, node_agent_pb2_grpc
from walrus_ha.protos import node_agent_pb2 as pb
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

WALRUS = [sys.executable, "-m", "walrus_ha"]
HUGE = 2 ** 64 - 1
REFUSED = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def local_cluster(request):
    engine = request.param
    if engine == "postgres":
        from walrus_ha.common.errors import EngineError
        from walrus_ha.node.engine.postgres.binaries import find_binaries
        try:
            find_binaries()
        except EngineError as exc:
            pytest.skip(str(exc))
    # Under /tmp at 0711 so the postgres user can reach the data dirs.
    base = tempfile.mkdtemp(prefix="walrus-terms-", dir="/tmp")
    os.chmod(base, 0o711)
    d = pathlib.Path(base) / "c"
    try:
        up = subprocess.run(WALRUS + ["cluster", "up", "--nodes", "2", "--engine", engine, "--dir", str(d),
                                      "--json", "--timeout", "150"], capture_output=True, text=True, timeout=200)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield engine, d, LocalCluster.load(str(d))
    finally:
        if (d / "cluster.json").exists():
            LocalCluster.load(str(d)).stop_all(timeout_s=5.0)
        shutil.rmtree(base, ignore_errors=True)


def _agents(lc: LocalCluster, channels: list) -> dict[str, node_agent_pb2_grpc.NodeAgentStub]:
    out = {}
    for n in lc.node_names():
        ch = channel(lc.agent_address(n))
        channels.append(ch)
        out[n] = node_agent_pb2_grpc.NodeAgentStub(ch)
    return out


def _status(stub) -> pb.NodeStatus:
    return stub.GetStatus(pb.GetStatusRequest(), timeout=5)


def _code(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


def _roles(agents) -> tuple[str, str]:
    def find():
        try:
            st = {n: _status(a) for n, a in agents.items()}
        except grpc.RpcError:
            return None
        prim = [n for n, s in st.items() if s.holds_leader and s.engine.role == ROLE_PRIMARY and not s.engine.fenced]
        stby = [n for n, s in st.items() if s.engine.role == ROLE_STANDBY and s.engine.streaming]
        return (prim[0], stby[0]) if len(prim) == 1 and len(stby) == 1 else None
    return wait_for(find, 120, what="one primary and one streaming standby")


def test_unvouched_terms_and_upstreams_are_refused_and_switchover_still_works(local_cluster):
    engine, d, lc = local_cluster
    channels: list = []
    try:
        agents = _agents(lc, channels)
        primary, standby = _roles(agents)
        s, p = agents[standby], agents[primary]
        term = _status(p).leader_term
        paddr = lc.data_address(primary)

        code, text = _code(lambda: s.Follow(pb.FollowRequest(term=HUGE, leader_name=primary,
                                                             leader_data_address=paddr), timeout=10))
        assert code == REFUSED and "newer than the cluster's term" in text
        code, text = _code(lambda: s.Rejoin(pb.RejoinRequest(term=HUGE, leader_name=primary,
                                                             leader_data_address=paddr), timeout=10))
        assert code == REFUSED and "newer than the cluster's term" in text
        code, text = _code(lambda: s.Demote(pb.DemoteRequest(term=HUGE), timeout=10))
        assert code == REFUSED and "newer than the cluster's term" in text
        code, text = _code(lambda: s.Follow(pb.FollowRequest(term=term, leader_name="ghost",
                                                             leader_data_address="127.0.0.1:1"), timeout=10))
        assert code == REFUSED and "unknown member 'ghost'" in text
        code, text = _code(lambda: s.Follow(pb.FollowRequest(term=term, leader_name=primary,
                                                             leader_data_address="127.0.0.1:1"), timeout=10))
        assert code == REFUSED and "not at '127.0.0.1:1'" in text
        code, text = _code(lambda: s.Follow(pb.FollowRequest(term=term, leader_name="x" * 100_000,
                                                             leader_data_address=paddr), timeout=10))
        assert code == INVALID and "limit is 128" in text

        # Nothing was adopted: the standby's term is the cluster's and it still streams.
        st = _status(s)
        assert st.engine.term <= term and st.engine.streaming and st.engine.upstream == f"{primary}@{paddr}"

        # A switchover to that standby works.
        sw = subprocess.run(WALRUS + ["ctl", "switchover", "--to", standby, "--dir", str(d)],
                            capture_output=True, text=True, timeout=60)
        assert sw.returncode == 0, sw.stdout + sw.stderr

        def switched():
            try:
                new = _status(s)
            except grpc.RpcError:
                return False
            return new.holds_leader and new.engine.role == ROLE_PRIMARY and not new.engine.fenced
        wait_for(switched, 120, what=f"{standby} primary after the switchover")
        assert _status(s).leader_term > term
    finally:
        for ch in channels:
            ch.close()


def _raw(ch: grpc.Channel, method: str):
    ident = lambda b: b    # noqa: E731
    return ch.unary_unary(method, request_serializer=ident, response_deserializer=ident)


@pytest.mark.parametrize("local_cluster", ["embedded"], indirect=True)   # the same surface for both engines
def test_bad_requests_to_agents_and_orchestrators(local_cluster):
    _, d, lc = local_cluster
    channels: list = []
    try:
        agents = _agents(lc, channels)
        a = next(iter(agents.values()))
        och = channel(lc.orchestrator_addresses()[0])
        channels.append(och)
        orch = cluster_pb2_grpc.ClusterStub(och)
        # Undecodable bytes: INVALID_ARGUMENT with a sentence, on both thread-pool servers.
        for ch, method in ((channels[0], "/walrus.v1.NodeAgent/Follow"),
                           (och, "/walrus.v1.Cluster/Switchover")):
            code, text = _code(lambda: _raw(ch, method)(b"\xff\xff\xff\xff\x0f", timeout=10))
            assert code == INVALID and "could not be decoded" in text
        # WatchStatus intervals that are not a number of seconds.
        for bad in (float("inf"), float("nan"), -1.0):
            code, text = _code(lambda: next(a.WatchStatus(pb.WatchStatusRequest(min_interval_s=bad), timeout=10)))
            assert code == INVALID and "min_interval_s" in text
        # A 100 KB name gets its short INVALID_ARGUMENT (not RESOURCE_EXHAUSTED on the metadata).
        code, text = _code(lambda: orch.Switchover(cluster_pb2.SwitchoverRequest(candidate="x" * 100_000), timeout=10))
        assert code == INVALID and len(text) < 200
        code, text = _code(lambda: orch.Failover(cluster_pb2.FailoverRequest(candidate="y" * 100_000), timeout=10))
        assert code == INVALID and len(text) < 200
        code, text = _code(lambda: a.Promote(pb.PromoteRequest(term=5, reason="r" * 100_000), timeout=10))
        assert code == INVALID and "reason" in text
        # Still serving, and no traceback in any log.
        assert _status(a).name
        logs = [p for p in pathlib.Path(d).rglob("*.log")]
        assert logs and not [str(p) for p in logs if "Traceback" in p.read_text(errors="replace")]
        listed = subprocess.run(WALRUS + ["ctl", "list", "--json", "--dir", str(d)], capture_output=True,
                                text=True, timeout=60)
        assert listed.returncode == 0 and len(json.loads(listed.stdout)["members"]) == 2
    finally:
        for ch in channels:
            ch.close()
