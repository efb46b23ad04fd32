"""Start and stop a real single-member etcd (tests, ``walrus cluster up``).

The one rule: the server listens on 127.0.0.1 only, on ports that were free
when picked, and is stopped by its PID (SIGTERM, then SIGKILL). Short
heartbeat/election settings make 1 s leases grantable.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from walrus_ha.common.errors import WalrusError

ETCD_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")


class EtcdServerError(WalrusError):
    """etcd could not be started (missing binary, exited, never answered)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (so our etcd, and only it, will answer there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def find_etcd(binary: str | None = None) -> str:
    """Path of the etcd binary; EtcdServerError says how to install it."""
    candidates = [binary] if binary else [os.environ.get("WALRUS_ETCD", ""), shutil.which("etcd") or "",
                                          *ETCD_CANDIDATES]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise EtcdServerError("etcd binary not found (looked for " + ", ".join(c for c in candidates if c)
                          + "): install etcd-server (apt-get install etcd-server) or set WALRUS_ETCD")


class EtcdServer:
    """One etcd process with its data in ``data_dir``.

    ``EtcdServer(data_dir).start()``; ``endpoint`` is ``127.0.0.1:<port>``;
    ``stop()`` is idempotent. ``start()`` after ``stop()`` restarts it on
    the same ports with the same data (used to test reconnects).
    """

    def __init__(self, data_dir: str | Path, client_port: int | None = None, peer_port: int | None = None,
                 name: str = "walrus-etcd", binary: str | None = None, initial_cluster: str = ""):
        self.data_dir = Path(data_dir)
        self.name = name
        self.initial_cluster = initial_cluster   # "n1=http://..,n2=http://.."; "" = this member alone
        self.binary = find_etcd(binary)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.etcd.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        client_url = f"http://127.0.0.1:{self.client_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        return [self.binary, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", self.initial_cluster or f"{self.name}={peer_url}",
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--log-level", "warn"]

    def start(self, timeout: float = 30.0) -> EtcdServer:
        """Start etcd and wait (up to ``timeout`` s) until it serves requests."""
        if self.process is not None and self.process.poll() is None:
            return self
        for port in (self.client_port, self.peer_port):
            if not port_is_free(port):
                raise EtcdServerError(f"port {port} on 127.0.0.1 is already in use (another etcd?)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EtcdServerError(f"etcd exited with {self.process.returncode}: {self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise EtcdServerError(f"etcd did not answer on {self.endpoint} within {timeout:g}s: {self._log_tail()}")

    def _answers(self) -> bool:
        """True once a linearizable read succeeds (the member elected itself)."""
        import grpc
        from etcd3 import etcdrpc
        with grpc.insecure_channel(self.endpoint) as channel:
            try:
                etcdrpc.KVStub(channel).Range(etcdrpc.RangeRequest(key=b"/"), timeout=0.5)
                return True
            except grpc.RpcError:
                return False

    def _log_tail(self, lines: int = 8) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s; by PID. Idempotent."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL by PID (a crash, for tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the server hangs without closing connections."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
