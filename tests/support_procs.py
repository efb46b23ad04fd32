"""Real walrus processes for the integration tests: one ``Proc`` per
``walrus <command> --config`` subprocess, ``AgentProc`` for a node agent
(embedded engine unless overridden) with clients for its two ports, and the
two cluster waits every harness needs. Shared by ``tests/node/agent`` and
``tests/orchestrator``; importable from any test module (the rootdir
conftest puts ``tests/`` on ``sys.path``).

Every process is stopped by its PID (SIGCONT, SIGTERM, then SIGKILL) by
``Proc.close()``; the harness that started it calls that.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
import yaml

from support_wait import wait_for
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc, store_pb2, store_pb2_grpc
from walrus_ha.tools.etcd_server import free_port

ROLE_PRIMARY, ROLE_STANDBY = 1, 2


def channel(address: str) -> grpc.Channel:
    """A channel that reconnects fast to a restarted process."""
    return grpc.insecure_channel(address, options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                   ("grpc.min_reconnect_backoff_ms", 50),
                                                   ("grpc.max_reconnect_backoff_ms", 300)])


class Proc:
    """One ``walrus <command> --config`` subprocess with its log file."""

    def __init__(self, directory: Path, command: str, config: dict, env: dict | None = None,
                 launcher: list[str] | None = None):
        self.dir = directory
        # argv before "<command> --config F": the walrus command itself, or a
        # test wrapper that patches the process first (fault injection).
        self.launcher = launcher or [sys.executable, "-m", "walrus_ha"]
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
                [*self.launcher, self.command, "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

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
        ch = channel(address)
        self.channels.append(ch)
        return ch

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class AgentProc(Proc):
    """One ``walrus node`` on free 127.0.0.1 ports, data in ``base/name``."""

    def __init__(self, base: Path, name: str, etcd: str, cluster: str, timing: Mapping[str, float],
                 **overrides):
        self.name = name
        self.agent_address = f"127.0.0.1:{free_port()}"
        self.data_address = f"127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        cfg = {"name": name, "cluster": cluster, "data_dir": str(base / name / "data"),
               "agent_listen": self.agent_address, "data_listen": self.data_address,
               "api_listen": self.api_url.removeprefix("http://"),
               "etcd": {"endpoints": [etcd]}, **timing, **overrides}
        super().__init__(base / name, "node", cfg)
        self.agent = node_agent_pb2_grpc.NodeAgentStub(self.channel(self.agent_address))
        self.store = store_pb2_grpc.StoreStub(self.channel(self.data_address))

    def status(self, timeout: float = 2.0) -> node_agent_pb2.NodeStatus:
        return self.agent.GetStatus(node_agent_pb2.GetStatusRequest(), timeout=timeout)

    def put(self, key: bytes, value: bytes, timeout: float = 5.0, level: int = store_pb2.COMMIT_DEFAULT):
        return self.store.Put(store_pb2.PutRequest(key=key, value=value, level=level), timeout=timeout)

    def get(self, key: bytes, timeout: float = 2.0) -> store_pb2.GetReply:
        return self.store.Get(store_pb2.GetRequest(key=key), timeout=timeout)


def wait_one_primary(agents: Mapping[str, AgentProc], names, timeout: float,
                     status_timeout: float = 2.0) -> AgentProc:
    """Wait for exactly one unfenced primary holding the leader key among ``names``."""
    def one():
        found = []
        for n in names:
            try:
                s = agents[n].status(timeout=status_timeout)
            except grpc.RpcError:
                continue
            if s.holds_leader and s.engine.role == ROLE_PRIMARY and not s.engine.fenced:
                found.append(agents[n])
        return found[0] if len(found) == 1 else None
    return wait_for(one, timeout, what=f"exactly one unfenced primary among {list(names)}")


def wait_streaming_from(agents: Mapping[str, AgentProc], name: str, leader: str, timeout: float,
                        status_timeout: float = 2.0) -> None:
    """Wait until ``name`` is a standby streaming from ``leader``."""
    up = f"{leader}@{agents[leader].data_address}"

    def ok():
        e = agents[name].status(timeout=status_timeout).engine
        return e.role == ROLE_STANDBY and e.upstream == up and e.streaming
    wait_for(ok, timeout, what=f"{name} streaming from {leader}")
