"""Real processes for the orchestrator's integration tests: node agents
(``walrus node``, embedded engine) and orchestrators (``walrus
orchestrator``), all on free 127.0.0.1 ports with their data and logs in
tmp_path, against the test's etcd. Every process started here is stopped by
its PID (SIGCONT, SIGTERM, then SIGKILL) by ``Procs.close()``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support_procs import ROLE_PRIMARY, ROLE_STANDBY, AgentProc, Proc, wait_one_primary, wait_streaming_from
from support_wait import wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc
from walrus_ha.tools.etcd_server import free_port

__all__ = ["AGENT_TIMING", "ORCH_TIMING", "ROLE_PRIMARY", "ROLE_STANDBY", "Agent", "Orchestrator", "Procs",
           "history", "procs", "wait_for"]

# bootstrap_wait: shorter than the default max(ttl/2, ...) so that the many
# fresh clusters of the suite do not each wait 1.5 s; the wipe test that
# needs the full wait sets it on its newcomer.
AGENT_TIMING = {"ttl": 3.0, "loop_wait": 0.3, "retry_timeout": 1.0, "safety_margin": 0.5, "bootstrap_wait": 0.3}
ORCH_TIMING = {"ttl": 3.0, "loop_wait": 0.2, "retry_timeout": 1.0, "rpc_timeout": 0.5}


class Agent(AgentProc):
    def __init__(self, base: Path, name: str, etcd: str, cluster: str, **overrides):
        super().__init__(base, name, etcd, cluster, AGENT_TIMING, **overrides)


class Orchestrator(Proc):
    def __init__(self, base: Path, orch_id: str, etcd: str, cluster: str, env: dict | None = None,
                 launcher: list[str] | None = None, **overrides):
        self.id = orch_id
        self.address = f"127.0.0.1:{free_port()}"
        cfg = {"id": orch_id, "cluster": cluster, "listen": self.address, "etcd": {"endpoints": [etcd]},
               **ORCH_TIMING, **overrides}
        super().__init__(base / orch_id, "orchestrator", cfg, env, launcher)
        self.cluster = cluster_pb2_grpc.ClusterStub(self.channel(self.address))

    def leader(self, timeout: float = 2.0) -> cluster_pb2.Leader:
        return self.cluster.GetLeader(cluster_pb2.GetLeaderRequest(), timeout=timeout)


class Procs:
    """Every agent and orchestrator of one test."""

    def __init__(self, base: Path, etcd: str, cluster: str):
        self.base, self.etcd, self.cluster = base, etcd, cluster
        self.agents: dict[str, Agent] = {}
        self.orchs: dict[str, Orchestrator] = {}

    def agent(self, name: str, start: bool = True, **overrides) -> Agent:
        a = Agent(self.base, name, self.etcd, self.cluster, **overrides)
        self.agents[name] = a
        return a.start() if start else a

    def orchestrator(self, orch_id: str, start: bool = True, env: dict | None = None,
                     launcher: list[str] | None = None, **overrides) -> Orchestrator:
        o = Orchestrator(self.base, orch_id, self.etcd, self.cluster, env=env, launcher=launcher, **overrides)
        self.orchs[orch_id] = o
        return o.start() if start else o

    def primary(self, names=None, timeout: float = 40.0) -> Agent:
        """Wait for exactly one unfenced primary holding the leader key."""
        return wait_one_primary(self.agents, names or list(self.agents), timeout, status_timeout=1.0)

    def standby_of(self, name: str, leader: str, timeout: float = 40.0) -> None:
        wait_streaming_from(self.agents, name, leader, timeout, status_timeout=1.0)

    def cluster3(self, timeout: float = 60.0) -> tuple[Agent, list[Agent]]:
        """Start a, b, c (if not started) and wait for 1 primary + 2 streaming standbys."""
        for n in ("a", "b", "c"):
            if n not in self.agents:
                self.agent(n)
        p = self.primary(timeout=timeout)
        others = [a for a in self.agents.values() if a is not p]
        for o in others:
            self.standby_of(o.name, p.name, timeout=timeout)
        return p, others

    def dump_logs(self) -> str:
        out = []
        for p in [*self.agents.values(), *self.orchs.values()]:
            out.append(f"\n----- log of {p.dir.name} ({p.command}) -----\n{p.log_text()[-8000:]}")
        return "".join(out)

    def close(self) -> None:
        for p in [*self.orchs.values(), *self.agents.values()]:
            p.close()


@pytest.fixture
def procs(tmp_path, etcd, cluster_name, request):
    """A ``Procs`` for this test on the test's etcd; logs printed if the test failed."""
    group = Procs(tmp_path, etcd.endpoint, cluster_name)
    failed_before = request.session.testsfailed
    try:
        yield group
    finally:
        group.close()
        if request.session.testsfailed > failed_before:
            sys.stderr.write(group.dump_logs())


def history(etcd_endpoint: str, cluster: str):
    """The cluster's history records, oldest first (read straight from etcd)."""
    with Dcs([etcd_endpoint], cluster) as dcs:
        return dcs.list_history(100)
