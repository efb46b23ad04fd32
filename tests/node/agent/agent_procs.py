"""Real node agents for the agent's integration tests (used by conftest.py).

The ``agents`` fixture is an ``Agents``: ``agents.add(name, **config)`` writes a node
config (free 127.0.0.1 ports, data in tmp_path, the test's etcd) and starts
``walrus node --config ...`` as a subprocess; every process it started is
stopped by PID afterwards (SIGCONT first, then SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import yaml

from protos import node_agent_pb2, node_agent_pb2_grpc, store_pb2, store_pb2_grpc
from walrus.etcd_server import free_port
from support_wait import wait_for

# ttl 4 s: short enough for quick expiry waits, long enough that a loaded 2-core box
# does not make a healthy primary miss its own deadline.
TIMING = {"ttl": 4.0, "loop_wait": 0.3, "retry_timeout": 1.0, "safety_margin": 0.5}
ROLE_PRIMARY, ROLE_STANDBY = 1, 2


class AgentProc:
    """One ``walrus node`` subprocess and clients for its two ports."""

    def __init__(self, base: Path, name: str, etcd_endpoint: str, cluster: str, **overrides):
        self.name = name
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.agent_address = f"127.0.0.1:{free_port()}"
        self.data_address = f"127.0.0.1:{free_port()}"
        cfg = {"name": name, "cluster": cluster, "data_dir": str(self.dir / "data"),
               "agent_listen": self.agent_address, "data_listen": self.data_address,
               "etcd": {"endpoints": [etcd_endpoint]}, **TIMING, **overrides}
        self.config_path = self.dir / "node.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = self.dir / "agent.log"
        self.proc: subprocess.Popen | None = None
        self._channels: list[grpc.Channel] = []
        self.agent = node_agent_pb2_grpc.NodeAgentStub(self._channel(self.agent_address))
        self.store = store_pb2_grpc.StoreStub(self._channel(self.data_address))

    def _channel(self, address: str) -> grpc.Channel:
        ch = grpc.insecure_channel(address, options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                     ("grpc.max_reconnect_backoff_ms", 300)])
        self._channels.append(ch)
        return ch

    def start(self) -> "AgentProc":
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "walrus.cli", "node", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        self.stop()
        for ch in self._channels:
            ch.close()

    # -- clients -------------------------------------------------------------------
    def status(self, timeout: float = 2.0) -> node_agent_pb2.NodeStatus:
        return self.agent.GetStatus(node_agent_pb2.GetStatusRequest(), timeout=timeout)

    def put(self, key: bytes, value: bytes, timeout: float = 5.0, level: int = store_pb2.COMMIT_DEFAULT):
        return self.store.Put(store_pb2.PutRequest(key=key, value=value, level=level), timeout=timeout)

    def get(self, key: bytes, timeout: float = 2.0) -> store_pb2.GetReply:
        return self.store.Get(store_pb2.GetRequest(key=key), timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Agents:
    def __init__(self, base: Path, etcd_endpoint: str, cluster: str):
        self.base, self.etcd_endpoint, self.cluster = base, etcd_endpoint, cluster
        self.all: dict[str, AgentProc] = {}

    def add(self, name: str, start: bool = True, **overrides) -> AgentProc:
        a = AgentProc(self.base, name, self.etcd_endpoint, self.cluster, **overrides)
        self.all[name] = a
        return a.start() if start else a

    def __getitem__(self, name: str) -> AgentProc:
        return self.all[name]

    def wait_primary(self, names=None, timeout: float = 40.0) -> AgentProc:
        names = names or list(self.all)

        def one():
            found = []
            for n in names:
                try:
                    s = self.all[n].status()
                except grpc.RpcError:
                    continue
                if s.holds_leader and s.engine.role == ROLE_PRIMARY and not s.engine.fenced:
                    found.append(self.all[n])
            return found[0] if len(found) == 1 else None
        return wait_for(one, timeout, what=f"exactly one unfenced primary among {names}")

    def wait_standby_of(self, name: str, leader: str, timeout: float = 40.0) -> None:
        up = f"{leader}@{self.all[leader].data_address}"

        def ok():
            s = self.all[name].status()
            return s.engine.role == ROLE_STANDBY and s.engine.upstream == up and s.engine.streaming
        wait_for(ok, timeout, what=f"{name} streaming from {leader}")

    def close(self) -> None:
        for a in self.all.values():
            a.close()


