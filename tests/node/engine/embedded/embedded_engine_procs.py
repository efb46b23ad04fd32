"""Test helper: run ``walrus engine`` servers as real processes.

Each ``EngineProc`` is one process on 127.0.0.1 (port 0 on first start, the
same port on restarts), stopped by the fixture that started it, by PID.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc

from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc, store_pb2, store_pb2_grpc

DEADLINE_S = 30.0


def wait_for(pred, timeout=DEADLINE_S, interval=0.02, what="condition"):
    """Poll ``pred`` until truthy; return its value or fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def has(proc: EngineProc, key: bytes) -> bytes | None:
    """The value ``proc`` serves for ``key`` (None if absent)."""
    r = proc.get(key)
    return r.value if r.found else None


class EngineProc:
    def __init__(self, name: str, data_dir: str, *extra: str, log_dir: str | None = None):
        self.name = name
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.ready_line = ""
        self.log_path = os.path.join(log_dir or os.path.dirname(data_dir), f"{name}.log")
        self._channel = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def upstream_arg(self) -> str:
        return f"{self.name}@{self.address}"

    def start(self, *extra: str, timeout: float = DEADLINE_S) -> EngineProc:
        if extra:
            self.extra = list(extra)
        cmd = [sys.executable, "-m", "walrus_ha", "engine", "--name", self.name, "--data-dir", self.data_dir,
               "--listen", f"127.0.0.1:{self.port}", *self.extra]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or "ready" not in lines[0]:
            self.kill()
            raise AssertionError(f"engine {self.name} did not start: {open(self.log_path).read()[-3000:]}")
        self.ready_line = lines[0].strip()
        fields = dict(kv.split("=", 1) for kv in self.ready_line.split()[2:])
        self.port = int(fields["listen"].rsplit(":", 1)[1])
        self._channel = None
        return self

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def store(self) -> store_pb2_grpc.StoreStub:
        return store_pb2_grpc.StoreStub(self.channel())

    def control(self) -> node_agent_pb2_grpc.NodeAgentStub:
        return node_agent_pb2_grpc.NodeAgentStub(self.channel())

    def status(self):
        return self.control().GetStatus(node_agent_pb2.GetStatusRequest(), timeout=10).engine

    def put(self, key: bytes, value: bytes, level: int = store_pb2.COMMIT_DEFAULT, timeout: float = 10):
        return self.store().Put(store_pb2.PutRequest(key=key, value=value, level=level), timeout=timeout)

    def get(self, key: bytes):
        return self.store().Get(store_pb2.GetRequest(key=key), timeout=10)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap (by PID)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(DEADLINE_S)
        self._close_channel()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(DEADLINE_S)
        self._close_channel()

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class Cluster:
    """Engines started by one test; ``close()`` stops them all by PID."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs: list[EngineProc] = []

    def engine(self, name: str, *extra: str) -> EngineProc:
        p = EngineProc(name, str(self.tmp / name), *extra, log_dir=str(self.tmp))
        self.procs.append(p)
        return p.start()

    def close(self) -> None:
        for p in self.procs:
            try:
                p.stop()
            except Exception:
                p.kill()
