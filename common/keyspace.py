"""The etcd keyspace of one cluster: ``/walrus/<cluster>/...`` (docs/design.md).

Pure string building, no I/O: both the agent and the orchestrator use it so
that nobody spells a key by hand.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keyspace:
    cluster: str
    root: str = "/walrus"

    @property
    def prefix(self) -> str:
        return f"{self.root}/{self.cluster}/"

    @property
    def members_prefix(self) -> str:
        return self.prefix + "members/"

    def member(self, name: str) -> str:
        return self.members_prefix + name

    @property
    def leader(self) -> str:
        return self.prefix + "leader"

    @property
    def term(self) -> str:
        return self.prefix + "term"

    @property
    def orchestrator(self) -> str:
        return self.prefix + "orchestrator"

    @property
    def orchestrators_prefix(self) -> str:
        """``orchestrators/<id>``: each orchestrator's address (``OrchestratorRecord``)."""
        return self.prefix + "orchestrators/"

    def orchestrator_entry(self, orch_id: str) -> str:
        return self.orchestrators_prefix + orch_id

    @property
    def config(self) -> str:
        return self.prefix + "config"

    @property
    def sync(self) -> str:
        return self.prefix + "sync"

    @property
    def history_prefix(self) -> str:
        return self.prefix + "history/"

    def history(self, term: int) -> str:
        # Zero-padded so that etcd's byte order is term order.
        return f"{self.history_prefix}{term:012d}"

    @property
    def switchover(self) -> str:
        return self.prefix + "switchover"

    @property
    def switchover_outcome(self) -> str:
        """How the last switchover/failover request ended (for ``walrus ctl`` to wait on)."""
        return self.prefix + "switchover_outcome"

    @property
    def pause(self) -> str:
        return self.prefix + "pause"

    @property
    def failover_state(self) -> str:
        """In-flight failover of the active orchestrator, so a successor can finish it."""
        return self.prefix + "failover"

    @property
    def initialize(self) -> str:
        """Who bootstrapped the cluster (create-if-absent, permanent)."""
        return self.prefix + "initialize"
