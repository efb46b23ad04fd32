"""What a drill runs against: the ``DrillTarget`` seam. Pure (no I/O here).

A scenario reads cluster facts, asks for health and causes faults only
through a target, by verb (``kill_node``, ``freeze_node``, ``isolate_node``,
``kill_etcd``, ...), never by signal or PID. Two targets implement it:

* ``local_target.LocalTarget``: a ``LocalCluster`` this machine runs (the
  default; signals by verified PID, cgroup freezer, iptables partitions);
* ``hook_target.HookTarget``: any cluster reachable by gRPC
  (``--orchestrators``), each fault caused by a shell command from a hook
  file (``--hooks``, ``deploy/drill-hooks/``).

A scenario declares the ``Action``s it needs (``traits(actions=...)``);
``missing_actions`` is the verdict a target without them gets: "not
applicable on this target: needs hook X", as an engine mismatch is.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from walrus_ha.tools.localcluster.client import ClusterClient
from walrus_ha.tools.localcluster.health import MemberHealth, Verdict


class Action(StrEnum):
    """A fault action (and its undo), as named in a hook file."""
    KILL_NODE = "kill-node"                  # SIGKILL a node's agent (and its engine)
    START_NODE = "start-node"                # start it again (undo of kill-node)
    FREEZE_AGENT = "freeze-agent"            # SIGSTOP the agent process only
    THAW_AGENT = "thaw-agent"                # SIGCONT it (undo)
    FREEZE_NODE = "freeze-node"              # freeze the node's whole tree (docker pause)
    THAW_NODE = "thaw-node"                  # thaw it (undo)
    KILL_ENGINE = "kill-engine"              # SIGKILL the engine (postmaster) only
    ISOLATE_NODE = "isolate-node"            # cut the node from etcd and its peers
    HEAL_NODE = "heal-node"                  # remove the cut (undo)
    KILL_ORCHESTRATOR = "kill-orchestrator"  # SIGKILL one orchestrator
    START_ORCHESTRATOR = "start-orchestrator"
    KILL_ETCD = "kill-etcd"                  # SIGKILL one etcd member
    START_ETCD = "start-etcd"
    WIPE_ETCD = "wipe-etcd"                  # every member stopped, data removed, started empty


# Each fault action -> its undo; the undo runs in ``finally`` and on Ctrl-C.
UNDO: dict[Action, Action] = {
    Action.KILL_NODE: Action.START_NODE, Action.FREEZE_AGENT: Action.THAW_AGENT,
    Action.FREEZE_NODE: Action.THAW_NODE, Action.ISOLATE_NODE: Action.HEAL_NODE,
    Action.KILL_ORCHESTRATOR: Action.START_ORCHESTRATOR, Action.KILL_ETCD: Action.START_ETCD,
}


class DrillTarget(Protocol):
    """The cluster a drill runs against. Facts are read once at open;
    verbs raise ``WalrusError`` (a failed hook names its command, exit code
    and stderr), which fails the round."""

    kind: str          # "local" or "remote"
    engine: str        # "embedded" or "postgres"
    sync: bool
    ttl: float

    def describe(self) -> dict:
        """Target facts for the report's ``config`` (``target``, timings, ...)."""
        ...

    def node_names(self) -> list[str]: ...
    def data_address(self, name: str) -> str: ...
    def name_of_data_address(self, address: str) -> str | None: ...
    def etcd_names(self) -> list[str]: ...
    def orchestrator_names(self) -> list[str]: ...
    def orchestrator_addresses(self) -> list[str]: ...
    def client(self) -> ClusterClient: ...
    def member_health(self) -> list[MemberHealth]: ...
    def wait_healthy(self, timeout_s: float, progress=lambda _m: None) -> Verdict: ...
    def wait_etcd(self, timeout_s: float) -> None: ...

    def missing(self, actions: Iterable[Action]) -> list[Action]:
        """Those of ``actions`` this target cannot carry out."""
        ...

    def kill_node(self, name: str) -> None: ...
    def start_node(self, name: str) -> None: ...
    def freeze_agent(self, name: str) -> None: ...
    def thaw_agent(self, name: str) -> None: ...
    def freeze_node(self, name: str) -> None: ...
    def thaw_node(self, name: str) -> None: ...
    def kill_engine(self, name: str) -> None: ...

    def engine_instance(self, name: str) -> str | None:
        """An id of ``name``'s running engine (the postmaster's PID) that
        changes when it restarts; None when the target cannot tell."""
        ...

    def isolate_node(self, name: str) -> None: ...

    def heal_node(self, name: str) -> list[str]:
        """Undo ``isolate_node``; what could not be removed (empty when clean)."""
        ...

    def kill_orchestrator(self, name: str) -> None: ...
    def start_orchestrator(self, name: str) -> None: ...
    def kill_etcd(self, name: str) -> None: ...
    def start_etcd(self, name: str) -> None: ...
    def wipe_etcd(self) -> None: ...

    def recover(self) -> list[str]:
        """Undo every fault still in force (thaw, heal, start what is down);
        what was done, one line each. Called after a failed round and when
        the drill ends, also on Ctrl-C."""
        ...


def missing_actions(scenario: str, needed: Iterable[Action], have: Iterable[Action],
                    what: str = "hook") -> str | None:
    """The "not applicable" sentence for a scenario whose ``needed`` actions
    are not all in ``have``; None when it can run."""
    have_set = set(have)
    lacking = [a.value for a in needed if a not in have_set]
    if not lacking:
        return None
    return (f"{scenario}: not applicable on this target: needs {what}{'s' if len(lacking) > 1 else ''} "
            f"{', '.join(lacking)}")
