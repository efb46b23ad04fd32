"""HAProxy in front of a local cluster: a read-write port that forwards (TCP)
to the member whose HTTP API answers 200 on ``/primary`` and a read-only port
over the members answering 200 on ``/replica``; the same shape as
``deploy/haproxy/haproxy.cfg``.

``render`` is pure (template + ports -> config text); ``Haproxy`` runs the
Debian ``haproxy`` binary in the foreground as a child process on loopback
ports and stops it by its PID.
"""
from __future__ import annotations

import os
import shutil
import string
import subprocess
from dataclasses import dataclass

from walrus_ha.common.errors import WalrusError

# Checks: every second while UP, every 250 ms while DOWN or changing, so a
# promoted standby takes the read-write traffic within about 250 ms of its
# /primary turning 200; two failed checks (or a refused connection) mark a
# server DOWN, and its open sessions are cut then (the client reconnects).
TEMPLATE = """\
global
    maxconn 1000

defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
    option redispatch
    default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions

listen walrus_rw
    bind $bind:$rw_port
    option httpchk
    http-check send meth GET uri /primary
    http-check expect status 200
$rw_servers

listen walrus_ro
    bind $bind:$ro_port
    balance roundrobin
    option httpchk
    http-check send meth GET uri /replica?lag=16MB
    http-check expect status 200
$ro_servers
"""


class HaproxyError(WalrusError):
    """HAProxy is missing, rejected its config or did not start."""


@dataclass(frozen=True)
class Backend:
    """One member: ``data`` (host:port, where clients' traffic goes) and
    ``api`` (host:port of its HTTP API, where the checks go)."""
    name: str
    data: str
    api: str


def _servers(backends: list[Backend]) -> str:
    lines = []
    for b in backends:
        data_host, _, data_port = b.data.rpartition(":")
        api_host, _, api_port = b.api.rpartition(":")
        lines.append(f"    server {b.name} {data_host}:{data_port} check addr {api_host} port {api_port}")
    return "\n".join(lines)


def backends_of(cluster: object) -> list[Backend]:
    """The backends of a ``LocalCluster`` (its data ports, its HTTP API ports)."""
    return [Backend(n, cluster.data_address(n), cluster.api_url(n).removeprefix("http://"))  # type: ignore[attr-defined]
            for n in cluster.node_names()]  # type: ignore[attr-defined]


def render(backends: list[Backend], rw_port: int, ro_port: int, bind: str = "127.0.0.1",
           template: str = TEMPLATE) -> str:
    """The config text for ``backends`` (pure)."""
    return string.Template(template).substitute(bind=bind, rw_port=rw_port, ro_port=ro_port,
                                                rw_servers=_servers(backends), ro_servers=_servers(backends))


def binary() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        raise HaproxyError("haproxy not found (Debian: apt-get install haproxy)")
    return path


def check_config(path: str) -> None:
    """``haproxy -c``; HaproxyError with its output when the config is refused."""
    res = subprocess.run([binary(), "-c", "-f", path], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise HaproxyError(f"haproxy refused {path}: {(res.stdout + res.stderr).strip()}")


class Haproxy:
    """One foreground ``haproxy -db -f CONFIG`` child; ``stop()`` ends it by PID."""

    def __init__(self, config_path: str, log_path: str):
        self.config_path = config_path
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> Haproxy:
        check_config(self.config_path)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen([binary(), "-db", "-f", self.config_path], stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def stop(self, timeout_s: float = 5.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.terminate()                  # SIGTERM to this PID: haproxy's "hard stop"
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=timeout_s)


__all__ = ["Backend", "backends_of", "Haproxy", "HaproxyError", "TEMPLATE", "render", "check_config", "binary"]
