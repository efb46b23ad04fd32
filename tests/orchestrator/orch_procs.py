"""Real processes for the orchestrator's integration tests: node agents
(``walrus node``, embedded engine) and orchestrators (``walrus
orchestrator``), all on free 127.0.0.1 ports with their data and logs in
tmp_path, against the test's etcd. Every process started here is stopped by
its PID (SIGCONT, SIGTERM, then SIGKILL) by ``Procs.close()``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from protos import cluster_pb2, cluster_pb2_grpc, node_agent_pb2, node_agent_pb2_grpc, store_pb2, store_pb2_grpc
from walrus.dcs import Dcs
from walrus.etcd_server import free_port
from support_wait import wait_for

AGENT_TIMING = {"ttl": 3.0, "loop_wait": 0.3, "retry_timeout": 1.0, "safety_margin": 0.5}
ORCH_TIMING = {"ttl": 3.0, "loop_wait": 0.2, "retry_timeout": 1.0, "rpc_timeout": 0.5}
ROLE_PRIMARY, ROLE_STANDBY = 1, 2


def _channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                   ("grpc.min_reconnect_backoff_ms", 50),
                                                   ("grpc.max_reconnect_backoff_ms", 300)])


class Proc:
    """One ``walrus <command> --config`` subprocess with its log file."""

    def __init__(self, directory: Path, command: str, config: dict, env: dict | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.config_path = self.dir / f"{command}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.dir / f"{command}.log"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.channels: list[grpc.Channel] = []

    def start(self):
        with open(self.log_path, "ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "walrus.cli", self.command, "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.running:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        self.stop()
        for ch in self.channels:
            ch.close()

    def channel(self, address: str) -> grpc.Channel:
        ch = _channel(address)
        self.channels.append(ch)
        return ch

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Agent(Proc):
    def __init__(self, base: Path, name: str, etcd: str, cluster: str, **overrides):
        self.name = name
        self.agent_address = f"127.0.0.1:{free_port()}"
        self.data_address = f"127.0.0.1:{free_port()}"
        cfg = {"name": name, "cluster": cluster, "data_dir": str(base / name / "data"),
               "agent_listen": self.agent_address, "data_listen": self.data_address,
               "etcd": {"endpoints": [etcd]}, **AGENT_TIMING, **overrides}
        super().__init__(base / name, "node", cfg)
        self.agent = node_agent_pb2_grpc.NodeAgentStub(self.channel(self.agent_address))
        self.store = store_pb2_grpc.StoreStub(self.channel(self.data_address))

    def status(self, timeout: float = 2.0) -> node_agent_pb2.NodeStatus:
        return self.agent.GetStatus(node_agent_pb2.GetStatusRequest(), timeout=timeout)

    def put(self, key: bytes, value: bytes, timeout: float = 5.0, level: int = store_pb2.COMMIT_DEFAULT):
        return self.store.Put(store_pb2.PutRequest(key=key, value=value, level=level), timeout=timeout)

    def get(self, key: bytes, timeout: float = 2.0) -> store_pb2.GetReply:
        return self.store.Get(store_pb2.GetRequest(key=key), timeout=timeout)


class Orchestrator(Proc):
    def __init__(self, base: Path, orch_id: str, etcd: str, cluster: str, env: dict | None = None,
                 **overrides):
        self.id = orch_id
        self.address = f"127.0.0.1:{free_port()}"
        cfg = {"id": orch_id, "cluster": cluster, "listen": self.address, "etcd": {"endpoints": [etcd]},
               **ORCH_TIMING, **overrides}
        super().__init__(base / orch_id, "orchestrator", cfg, env)
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

    def orchestrator(self, orch_id: str, start: bool = True, env: dict | None = None, **overrides) -> Orchestrator:
        o = Orchestrator(self.base, orch_id, self.etcd, self.cluster, env=env, **overrides)
        self.orchs[orch_id] = o
        return o.start() if start else o

    def primary(self, names=None, timeout: float = 40.0) -> Agent:
        """Wait for exactly one unfenced primary holding the leader key."""
        names = names or list(self.agents)

        def one():
            found = []
            for n in names:
                try:
                    s = self.agents[n].status(timeout=1.0)
                except grpc.RpcError:
                    continue
                if s.holds_leader and s.engine.role == ROLE_PRIMARY and not s.engine.fenced:
                    found.append(self.agents[n])
            return found[0] if len(found) == 1 else None
        return wait_for(one, timeout, what=f"exactly one unfenced primary among {names}")

    def standby_of(self, name: str, leader: str, timeout: float = 40.0) -> None:
        up = f"{leader}@{self.agents[leader].data_address}"

        def ok():
            e = self.agents[name].status(timeout=1.0).engine
            return e.role == ROLE_STANDBY and e.upstream == up and e.streaming
        wait_for(ok, timeout, what=f"{name} streaming from {leader}")

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
