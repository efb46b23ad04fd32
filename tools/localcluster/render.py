"""Config rendering for a local cluster: pure functions, no I/O.

The one rule: everything a local cluster needs (ports, paths, timings, the
argv of every process) is decided here from a ``ClusterSpec`` and a port
source, so it can be unit-tested and written to ``cluster.json`` verbatim.
Timings are tuned for one machine: short leases so failover is quick, yet
consistent with the loaders' checks (``loop_wait + 2*retry_timeout <= ttl``,
``safety_margin < ttl/2``).
"""
from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


class EngineKind(enum.Enum):
    EMBEDDED = "embedded"
    POSTGRES = "postgres"


class ProcKind(enum.Enum):
    ETCD = "etcd"
    NODE = "node"
    ORCHESTRATOR = "orchestrator"


@dataclass(frozen=True)
class Timings:
    """Fast timings for a local cluster (seconds)."""
    ttl: float = 3.0
    loop_wait: float = 0.2
    retry_timeout: float = 1.0
    safety_margin: float = 0.75
    orch_loop_wait: float = 0.1
    rpc_timeout: float = 0.5


@dataclass(frozen=True)
class ClusterSpec:
    """What ``walrus cluster up`` was asked for."""
    directory: str
    nodes: int = 3
    engine: EngineKind = EngineKind.EMBEDDED
    sync: bool = False
    etcd_endpoints: tuple[str, ...] = ()   # () = start our own etcd
    etcd_members: int = 1                  # members of our own etcd (1, 3 or 5)
    orchestrators: int = 2
    cluster: str = "walrus"
    timings: Timings = field(default_factory=Timings)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= 9:
            raise ValueError(f"--nodes must be between 1 and 9, got {self.nodes}")
        if self.etcd_members not in (1, 3, 5):
            raise ValueError(f"--etcd-members must be 1, 3 or 5, got {self.etcd_members}")
        if not 1 <= self.orchestrators <= 5:
            raise ValueError(f"orchestrators must be between 1 and 5, got {self.orchestrators}")


@dataclass(frozen=True)
class ProcPlan:
    """One process to start: its name, kind, argv, config and log file."""
    name: str
    kind: ProcKind
    argv: tuple[str, ...]
    log: str
    config_path: str = ""
    config: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterPlan:
    spec: ClusterSpec
    etcd_endpoints: tuple[str, ...]
    procs: tuple[ProcPlan, ...]

    def of_kind(self, kind: ProcKind) -> list[ProcPlan]:
        return [p for p in self.procs if p.kind is kind]


def node_names(count: int) -> list[str]:
    """``node1 .. nodeN``: short, sortable, valid member names."""
    return [f"node{i}" for i in range(1, count + 1)]


def etcd_plan(directory: str, client_port: int, peer_port: int, name: str = "etcd",
              initial_cluster: str = "") -> ProcPlan:
    """argv of one etcd member on loopback with fast elections (1 s leases
    work), as ``tools.etcd_server`` builds it; alone unless ``initial_cluster``
    names its peers. Raises EtcdServerError (with how to install etcd) when
    the binary is missing."""
    from walrus_ha.tools.etcd_server import EtcdServer  # finds the binary; only needed when we run etcd
    data = f"{directory}/etcd" if name == "etcd" else f"{directory}/{name}"
    argv = tuple(EtcdServer(data, client_port, peer_port, name=name, initial_cluster=initial_cluster).command())
    return ProcPlan(name=name, kind=ProcKind.ETCD, argv=argv, log=f"{directory}/logs/{name}.log",
                    ports={"client": client_port, "peer": peer_port})


def node_config(spec: ClusterSpec, name: str, agent_port: int, data_port: int,
                etcd_endpoints: tuple[str, ...], api_port: int = 0) -> dict:
    """The YAML mapping of one ``node.yaml`` (see ``node.config.NodeConfig``)."""
    t = spec.timings
    cfg: dict = {
        "name": name, "cluster": spec.cluster, "data_dir": f"{spec.directory}/data/{name}",
        "agent_listen": f"127.0.0.1:{agent_port}", "data_listen": f"127.0.0.1:{data_port}",
        "engine": spec.engine.value,
        "etcd": {"endpoints": list(etcd_endpoints), "timeout_s": 1.0},
        "ttl": t.ttl, "loop_wait": t.loop_wait, "retry_timeout": t.retry_timeout,
        "safety_margin": t.safety_margin, "log_level": spec.log_level,
    }
    if api_port:
        cfg["api_listen"] = f"127.0.0.1:{api_port}"
    if spec.engine is EngineKind.EMBEDDED:
        # "on" waits for the published sync set; with none (async mode) it is local.
        cfg["embedded"] = {"synchronous_commit": "on", "segment_size": 4 * 1024 * 1024,
                           "wal_sender_timeout_s": 2.0}
    return cfg


def orch_config(spec: ClusterSpec, orch_id: str, port: int, etcd_endpoints: tuple[str, ...],
                metrics_port: int = 0) -> dict:
    """The YAML mapping of one ``orch.yaml`` (see ``orchestrator.config.OrchestratorConfig``)."""
    t = spec.timings
    cfg: dict = {
        "id": orch_id, "cluster": spec.cluster, "listen": f"127.0.0.1:{port}",
        "etcd": {"endpoints": list(etcd_endpoints), "timeout_s": 1.0},
        "ttl": t.ttl, "loop_wait": t.orch_loop_wait, "retry_timeout": t.retry_timeout,
        "rpc_timeout": t.rpc_timeout, "log_level": spec.log_level,
    }
    if metrics_port:
        cfg["metrics_listen"] = f"127.0.0.1:{metrics_port}"
    if spec.sync:
        cfg.update(synchronous_mode=True, synchronous_node_count=1)
    return cfg


def plan_cluster(spec: ClusterSpec, free_port: Callable[[], int], python: str = sys.executable) -> ClusterPlan:
    """Decide ports, config files and argv of every process of the cluster.

    ``free_port`` returns a fresh loopback port each call (injected so tests
    are deterministic). Order of ``procs``: etcd (if ours), nodes, orchestrators
    -- the order they are started in.
    """
    d = spec.directory
    ports = _unique(free_port)
    procs: list[ProcPlan] = []
    endpoints = spec.etcd_endpoints
    if not endpoints:
        if spec.etcd_members == 1:
            members = [("etcd", next(ports), next(ports))]
        else:
            members = [(f"etcd{i}", next(ports), next(ports)) for i in range(1, spec.etcd_members + 1)]
        initial = "" if len(members) == 1 else ",".join(f"{n}=http://127.0.0.1:{peer}" for n, _, peer in members)
        for name, client, peer in members:
            procs.append(etcd_plan(d, client, peer, name, initial))
        endpoints = tuple(f"127.0.0.1:{client}" for _, client, _ in members)
    names = node_names(spec.nodes)
    for name in names:
        agent_port, data_port, api_port = next(ports), next(ports), next(ports)
        cfg = node_config(spec, name, agent_port, data_port, endpoints, api_port)
        path = f"{d}/conf/{name}.yaml"
        procs.append(ProcPlan(name=name, kind=ProcKind.NODE, config_path=path, config=cfg,
                              argv=(python, "-m", "walrus_ha", "node", "--config", path),
                              log=f"{d}/logs/{name}.log", ports={"agent": agent_port, "data": data_port,
                                                                      "api": api_port}))
    for i in range(1, spec.orchestrators + 1):
        oid = f"orch{i}"
        port, metrics_port = next(ports), next(ports)
        path = f"{d}/conf/{oid}.yaml"
        procs.append(ProcPlan(name=oid, kind=ProcKind.ORCHESTRATOR, config_path=path,
                              config=orch_config(spec, oid, port, endpoints, metrics_port),
                              argv=(python, "-m", "walrus_ha", "orchestrator", "--config", path),
                              log=f"{d}/logs/{oid}.log", ports={"listen": port, "metrics": metrics_port}))
    return ClusterPlan(spec=spec, etcd_endpoints=tuple(endpoints), procs=tuple(procs))


def _unique(free_port: Callable[[], int]) -> Iterator[int]:
    seen: set[int] = set()
    while True:
        port = free_port()
        if port not in seen:
            seen.add(port)
            yield port
