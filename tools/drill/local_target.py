"""``LocalTarget``: the ``DrillTarget`` of a ``LocalCluster`` on this machine.

Every verb is what the scenarios did before the target seam existed:
SIGKILL / SIGSTOP / SIGCONT by verified PID, a whole-tree freeze
(``freeze.TreeFreeze``), a cgroup + iptables partition (``partition``), etcd
members stopped and their data directories removed. Faults that need this
machine's files (corrupt-wal, disk-full) reach the ``LocalCluster`` itself
through ``cluster``.
"""
from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterable

from walrus_ha.common import procs
from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill import partition
from walrus_ha.tools.drill.freeze import TreeFreeze, tree_pids
from walrus_ha.tools.drill.target import Action
from walrus_ha.tools.localcluster.client import ClusterClient
from walrus_ha.tools.localcluster.cluster import LocalCluster
from walrus_ha.tools.localcluster.health import MemberHealth, Verdict


class LocalTarget:
    """A ``DrillTarget`` over ``cluster`` (``target.py``)."""

    kind = "local"

    def __init__(self, cluster: LocalCluster, progress=lambda _m: None):
        self.cluster = cluster
        self.engine = cluster.spec.engine.value
        self.sync = cluster.spec.sync
        self.ttl = cluster.spec.timings.ttl
        self._progress = progress
        self._frozen: dict[str, TreeFreeze] = {}
        self._cuts: dict[str, partition.Partition] = {}
        self._cut_count = 0

    # ---- facts --------------------------------------------------------------------
    def describe(self) -> dict:
        t = self.cluster.spec.timings
        return {"target": "local", "ttl": t.ttl, "loop_wait": t.loop_wait, "orch_loop_wait": t.orch_loop_wait,
                "retry_timeout": t.retry_timeout, "safety_margin": t.safety_margin}

    def node_names(self) -> list[str]:
        return self.cluster.node_names()

    def data_address(self, name: str) -> str:
        return self.cluster.data_address(name)

    def name_of_data_address(self, address: str) -> str | None:
        return self.cluster.name_of_data_address(address)

    def etcd_names(self) -> list[str]:
        return self.cluster.etcd_names()

    def orchestrator_names(self) -> list[str]:
        return self.cluster.orchestrator_names()

    def orchestrator_addresses(self) -> list[str]:
        return self.cluster.orchestrator_addresses()

    def client(self) -> ClusterClient:
        return self.cluster.client()

    def member_health(self) -> list[MemberHealth]:
        return self.cluster.member_health()

    def wait_healthy(self, timeout_s: float, progress=lambda _m: None) -> Verdict:
        return self.cluster.wait_healthy(timeout_s, progress)

    def wait_etcd(self, timeout_s: float) -> None:
        self.cluster.wait_etcd(timeout_s)

    def missing(self, actions: Iterable[Action]) -> list[Action]:
        return []          # every verb has a local way (partitions: see the scenario's ``unavailable``)

    # ---- nodes --------------------------------------------------------------------
    def kill_node(self, name: str) -> None:
        self.cluster.kill(name)

    def start_node(self, name: str) -> None:
        self.cluster.start(name)

    def freeze_agent(self, name: str) -> None:
        self.cluster.signal(name, signal.SIGSTOP)

    def thaw_agent(self, name: str) -> None:
        self.cluster.signal(name, signal.SIGCONT)

    def freeze_node(self, name: str) -> None:
        """Freeze the agent, postmaster, backends and fencer at once (``freeze.py``)."""
        handle = self.cluster.processes[name].handle
        if name not in self._frozen and handle and procs.is_ours(handle):
            tree = self._frozen[name] = TreeFreeze(handle.pid)
            pids = tree.freeze()
            self._progress(f"froze {name}'s whole tree ({len(pids)} processes, {tree.method})")
        elif name not in self._frozen:
            self.cluster.signal(name, signal.SIGSTOP)

    def thaw_node(self, name: str) -> None:
        if name in self._frozen:
            self._frozen.pop(name).thaw()
        else:
            self.cluster.signal(name, signal.SIGCONT)

    def engine_instance(self, name: str) -> str | None:
        """The PID in ``name``'s postmaster.pid ("" when absent or unreadable)."""
        path = f"{self.cluster.spec.directory}/data/{name}/pgdata/postmaster.pid"
        try:
            with open(path) as f:
                pid = int(f.readline().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        return str(pid) if pid else ""

    def kill_engine(self, name: str) -> None:
        pid = self.engine_instance(name)
        if not pid:
            raise WalrusError(f"no postmaster.pid for {name}")
        os.kill(int(pid), signal.SIGKILL)

    def _tree(self, name: str) -> list[int]:
        handle = self.cluster.current(name)
        if handle is None:
            raise WalrusError(f"{name} is not running")
        return tree_pids(handle.pid)

    def isolate_node(self, name: str) -> None:
        """Cut ``name``'s process tree from etcd, and the other nodes' trees
        from its data port (cgroup v2 + iptables on loopback)."""
        self._cut_count += 1
        cut = self._cuts[name] = partition.Partition(f"r{self._cut_count}")
        others = [n for n in self.node_names() if n != name]
        cut.cut("primary", self._tree(name), [_port(e) for e in self.cluster.etcd_endpoints])
        cut.cut("standbys", [p for n in others for p in self._tree(n)], [_port(self.data_address(name))])

    def heal_node(self, name: str) -> list[str]:
        cut = self._cuts.pop(name, None)
        return cut.heal() if cut is not None else []

    # ---- orchestrators and etcd ---------------------------------------------------
    def kill_orchestrator(self, name: str) -> None:
        self.cluster.kill(name)

    def start_orchestrator(self, name: str) -> None:
        self.cluster.start(name)

    def kill_etcd(self, name: str) -> None:
        self.cluster.kill(name)

    def start_etcd(self, name: str) -> None:
        self.cluster.start(name)

    def wipe_etcd(self) -> None:
        """Stop every member, remove their data directories, start them empty
        on the same addresses (one new cluster)."""
        names = self.etcd_names()
        for name in names:
            self.cluster.stop(name)
        for name in names:
            argv = list(self.cluster.processes[name].plan.argv)
            shutil.rmtree(argv[argv.index("--data-dir") + 1], ignore_errors=True)
        for name in names:
            self.cluster.start(name)

    def release(self) -> list[str]:
        """Heal the partitions and thaw the trees still in force (what a
        cluster the drill leaves running must not keep)."""
        done = []
        for name in list(self._cuts):
            left = self.heal_node(name)
            done.append(f"healed {name}" + (f" (left: {'; '.join(left)})" if left else ""))
        for name in list(self._frozen):
            self.thaw_node(name)
            done.append(f"thawed {name}'s tree")
        return done

    def recover(self) -> list[str]:
        """``release``, then SIGCONT every node and start the nodes that do not run."""
        done = self.release()
        for name in self.node_names():
            self.cluster.signal(name, signal.SIGCONT)
            if not self.cluster.running(name):
                self.cluster.start(name)
                done.append(f"started {name}")
        return done


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])
