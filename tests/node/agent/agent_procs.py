"""Real node agents for the agent's integration tests (used by conftest.py).

The ``agents`` fixture is an ``Agents``: ``agents.add(name, **config)`` writes a node
config (free 127.0.0.1 ports, data in tmp_path, the test's etcd) and starts
``walrus node --config ...`` as a subprocess (``support_procs.AgentProc``); every
process it started is stopped by PID afterwards (SIGCONT first, then SIGTERM,
then SIGKILL).
"""
from __future__ import annotations

from pathlib import Path

from support_procs import ROLE_PRIMARY, ROLE_STANDBY, AgentProc, wait_one_primary, wait_streaming_from
from support_wait import wait_for

__all__ = ["Agents", "AgentProc", "ROLE_PRIMARY", "ROLE_STANDBY", "TIMING", "wait_for"]

# ttl 4 s: short enough for quick expiry waits, long enough that a loaded 2-core box
# does not make a healthy primary miss its own deadline.
TIMING = {"ttl": 4.0, "loop_wait": 0.3, "retry_timeout": 1.0, "safety_margin": 0.5, "bootstrap_wait": 0.3}


class Agents:
    def __init__(self, base: Path, etcd_endpoint: str, cluster: str):
        self.base, self.etcd_endpoint, self.cluster = base, etcd_endpoint, cluster
        self.all: dict[str, AgentProc] = {}

    def add(self, name: str, start: bool = True, **overrides) -> AgentProc:
        a = AgentProc(self.base, name, self.etcd_endpoint, self.cluster, TIMING, **overrides)
        self.all[name] = a
        return a.start() if start else a

    def __getitem__(self, name: str) -> AgentProc:
        return self.all[name]

    def wait_primary(self, names=None, timeout: float = 40.0) -> AgentProc:
        return wait_one_primary(self.all, names or list(self.all), timeout)

    def wait_standby_of(self, name: str, leader: str, timeout: float = 40.0) -> None:
        wait_streaming_from(self.all, name, leader, timeout)

    def close(self) -> None:
        for a in self.all.values():
            a.close()
