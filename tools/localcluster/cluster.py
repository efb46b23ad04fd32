"""A local cluster of real processes: etcd, N node agents, orchestrators.

``LocalCluster`` owns ``DIR/cluster.json`` (the plan plus the identity of every
process it started) and is the one place that starts, restarts, signals and
stops them. ``walrus cluster``, ``walrus drill`` and ``walrus demo`` use it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from walrus_ha.common import pidfile, procs
from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.localcluster.client import AgentClient, ClusterClient
from walrus_ha.tools.localcluster.health import MemberHealth, Verdict, judge, member_health
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind, ProcKind, ProcPlan, Timings, plan_cluster

STATE_FILE = "cluster.json"
Progress = Callable[[str], None]


class LocalClusterError(WalrusError):
    """The local cluster could not be started, found or stopped."""


def free_port() -> int:
    """A loopback port that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    plan: ProcPlan
    handle: procs.ProcHandle | None = None
    popen: subprocess.Popen | None = None   # only in the process that started it


class LocalCluster:
    """Start/stop/inspect the processes of one local cluster directory."""

    def __init__(self, directory: str, spec: ClusterSpec, etcd_endpoints: tuple[str, ...],
                 processes: dict[str, Proc], created_at: float):
        self.directory = directory
        self.spec = spec
        self.etcd_endpoints = etcd_endpoints
        self.processes = processes
        self.created_at = created_at
        self.agents = AgentClient(timeout_s=1.0)
        self._client: ClusterClient | None = None

    # ---- construction -------------------------------------------------------------
    @classmethod
    def create(cls, spec: ClusterSpec, port_source: Callable[[], int] = free_port) -> LocalCluster:
        """Plan a new cluster in ``spec.directory`` and write its config files.

        Raises LocalClusterError if the directory already holds a cluster."""
        d = os.path.abspath(spec.directory)
        if os.path.exists(os.path.join(d, STATE_FILE)):
            raise LocalClusterError(f"{d} already holds a cluster ({STATE_FILE}); "
                                    f"'walrus cluster up --dir {spec.directory}' restarts it once it is down, "
                                    f"or pick another --dir")
        spec = ClusterSpec(**{**spec.__dict__, "directory": d})
        plan = plan_cluster(spec, port_source)
        for sub in ("conf", "logs", "data"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if spec.engine is EngineKind.POSTGRES:
            _make_traversable(d)
        for p in plan.procs:
            if p.config_path:
                with open(p.config_path, "w") as f:
                    yaml.safe_dump(p.config, f, sort_keys=False)
        cluster = cls(d, spec, plan.etcd_endpoints, {p.name: Proc(p) for p in plan.procs}, time.time())
        cluster.save()
        return cluster

    @classmethod
    def load(cls, directory: str) -> LocalCluster:
        """Read ``DIR/cluster.json``; LocalClusterError if there is none."""
        d = os.path.abspath(directory)
        path = os.path.join(d, STATE_FILE)
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise LocalClusterError(f"no cluster in {d} (no {STATE_FILE}); start one with "
                                    f"'walrus cluster up --dir {directory}'") from None
        except (OSError, ValueError) as exc:
            raise LocalClusterError(f"cannot read {path}: {exc}") from None
        try:
            return cls._from_json(d, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalClusterError(f"cannot read {path}: malformed ({exc!r})") from None

    @classmethod
    def _from_json(cls, d: str, data: dict) -> LocalCluster:
        s = data["spec"]
        spec = ClusterSpec(directory=d, nodes=s["nodes"], engine=EngineKind(s["engine"]), sync=s["sync"],
                           etcd_endpoints=tuple(s["etcd_endpoints"]), etcd_members=s.get("etcd_members", 1),
                           orchestrators=s["orchestrators"],
                           cluster=s["cluster"], timings=Timings(**s["timings"]), log_level=s["log_level"])
        processes = {}
        for name, p in data["processes"].items():
            plan = ProcPlan(name=name, kind=ProcKind(p["kind"]), argv=tuple(p["argv"]), log=p["log"],
                            config_path=p.get("config_path", ""), ports=p.get("ports", {}))
            handle = procs.ProcHandle.from_json(p["handle"]) if p.get("handle") else None
            processes[name] = Proc(plan, handle)
        return cls(d, spec, tuple(data["etcd_endpoints"]), processes, data.get("created_at", 0.0))

    def to_json(self) -> dict:
        s = self.spec
        return {
            "version": 1, "directory": self.directory, "created_at": self.created_at,
            "spec": {"nodes": s.nodes, "engine": s.engine.value, "sync": s.sync,
                     "etcd_endpoints": list(s.etcd_endpoints), "etcd_members": s.etcd_members,
                     "orchestrators": s.orchestrators,
                     "cluster": s.cluster, "timings": s.timings.__dict__, "log_level": s.log_level},
            "etcd_endpoints": list(self.etcd_endpoints),
            "orchestrators": self.orchestrator_addresses(),
            "orchestrator_metrics": {n: self.metrics_url(n) for n in self.orchestrator_names()},
            "members": {n: {"agent_address": self.agent_address(n), "data_address": self.data_address(n),
                            "http": self.api_url(n)}
                        for n in self.node_names()},
            "processes": {name: {"kind": p.plan.kind.value, "argv": list(p.plan.argv), "log": p.plan.log,
                                 "config_path": p.plan.config_path, "ports": p.plan.ports,
                                 "handle": p.handle.to_json() if p.handle else None,
                                 "pid": p.handle.pid if p.handle else None}
                          for name, p in self.processes.items()},
        }

    def save(self) -> None:
        """Write ``cluster.json`` atomically (temp file + rename)."""
        path = os.path.join(self.directory, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=2)
        os.replace(tmp, path)

    # ---- addresses ------------------------------------------------------------------
    def node_names(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.plan.kind is ProcKind.NODE]

    def etcd_names(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.plan.kind is ProcKind.ETCD]

    def orchestrator_names(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.plan.kind is ProcKind.ORCHESTRATOR]

    def agent_address(self, name: str) -> str:
        return f"127.0.0.1:{self.processes[name].plan.ports['agent']}"

    def data_address(self, name: str) -> str:
        return f"127.0.0.1:{self.processes[name].plan.ports['data']}"

    def api_url(self, name: str) -> str:
        """The node's HTTP API base URL ("" for a cluster planned before it had one)."""
        port = self.processes[name].plan.ports.get("api")
        return f"http://127.0.0.1:{port}" if port else ""

    def metrics_url(self, name: str) -> str:
        """Prometheus metrics URL of a node (its HTTP API's ``/metrics``) or of
        an orchestrator (its ``metrics_listen``); "" when it has none."""
        ports = self.processes[name].plan.ports
        if self.processes[name].plan.kind is ProcKind.NODE:
            base = self.api_url(name)
            return f"{base}/metrics" if base else ""
        return f"http://127.0.0.1:{ports['metrics']}/metrics" if ports.get("metrics") else ""

    def name_of_data_address(self, address: str) -> str | None:
        for n in self.node_names():
            if self.data_address(n) == address:
                return n
        return None

    def orchestrator_addresses(self) -> list[str]:
        return [f"127.0.0.1:{self.processes[n].plan.ports['listen']}" for n in self.orchestrator_names()]

    def client(self) -> ClusterClient:
        """A Cluster client over this cluster's orchestrators (cached)."""
        if self._client is None:
            self._client = ClusterClient(self.orchestrator_addresses())
        return self._client

    # ---- process control ---------------------------------------------------------
    def data_dir(self, name: str) -> str:
        """A node's data dir, as its config file says (the planned one if unreadable)."""
        p = self.processes[name]
        try:
            with open(p.plan.config_path) as f:
                value = (yaml.safe_load(f) or {}).get("data_dir")
        except (OSError, yaml.YAMLError, AttributeError):
            value = None
        return str(value) if value else os.path.join(self.directory, "data", name)

    def current(self, name: str) -> procs.ProcHandle | None:
        """The running process of ``name``: the one we started, or (a node) the
        agent its pid file names, verified to be ``walrus node`` with this
        node's config (``common.pidfile``); None when it does not run."""
        p = self.processes[name]
        if p.popen is not None:
            p.popen.poll()
        if p.handle and procs.is_ours(p.handle):
            return p.handle
        if p.plan.kind is ProcKind.NODE and p.plan.config_path:
            found = pidfile.running_agent(self.data_dir(name), p.plan.config_path)
            if found is not None:
                return found.handle
        return None

    def start(self, name: str) -> procs.ProcHandle:
        """Start (or restart) one process with its planned argv; records its
        handle. A process that already runs (however started) is left alone."""
        p = self.processes[name]
        running = self.current(name)
        if running is not None:
            return running
        try:
            p.popen, p.handle = procs.spawn(p.plan.argv, p.plan.log, env=_child_env(), cwd=self.directory)
        except OSError as exc:
            raise LocalClusterError(f"cannot start {name} ({p.plan.argv[0]}): {exc.strerror}") from None
        self.save()
        return p.handle

    def running(self, name: str) -> bool:
        return self.current(name) is not None

    def exit_status(self, name: str) -> str:
        """How a process we started ended, as far as we can know (for error messages)."""
        p = self.processes[name]
        code = p.popen.poll() if p.popen is not None else None
        if code is None:
            return "not running" if p.popen is None else "no longer the process we started"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def signal(self, name: str, sig: int) -> bool:
        """Send ``sig`` to one process if it runs (``current``; verified first)."""
        handle = self.current(name)
        return handle is not None and procs.send(handle, sig)

    def kill(self, name: str) -> bool:
        """SIGKILL one process (and reap it if it is our child)."""
        sent = self.signal(name, signal.SIGKILL)
        p = self.processes[name]
        if sent and p.popen is not None:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return sent

    def stop(self, name: str, timeout_s: float = 10.0) -> str:
        """SIGTERM (then SIGKILL) the process of ``name``, however it was
        started (``current``); "gone", "terminated" or "killed"."""
        p = self.processes[name]
        handle = self.current(name)
        if handle is None:
            return "gone"
        outcome = procs.stop(handle, timeout_s)
        if p.popen is not None:
            p.popen.poll()
        return outcome

    def start_all(self, progress: Progress = lambda _m: None) -> None:
        """Start every process: etcd first (and wait for it), then agents, then orchestrators."""
        etcds = self.etcd_names()
        for attempt in (1, 2):    # one retry: a port race or a stray signal at start is transient
            for name in etcds:
                self.start(name)
                progress(f"{name} started (pid {self.processes[name].handle.pid})")
            progress(f"waiting for etcd ({len(etcds)} member{'s' if len(etcds) != 1 else ''}) to answer")
            try:
                self.wait_etcd(15.0 * len(etcds))
                break
            except LocalClusterError as exc:
                if attempt == 2:
                    raise
                progress(f"{exc}; starting it again")
        for kind in (ProcKind.NODE, ProcKind.ORCHESTRATOR):
            for name, p in self.processes.items():
                if p.plan.kind is kind:
                    h = self.start(name)
                    progress(f"{name} started (pid {h.pid}, log {os.path.relpath(p.plan.log, self.directory)})")

    def stop_all(self, timeout_s: float = 10.0, progress: Progress = lambda _m: None) -> dict[str, str]:
        """Stop orchestrators first (no failover while agents go), then agents, then etcd."""
        outcomes = {}
        for kind in (ProcKind.ORCHESTRATOR, ProcKind.NODE, ProcKind.ETCD):
            for name, p in self.processes.items():
                if p.plan.kind is kind:
                    outcomes[name] = self.stop(name, timeout_s)
                    progress(f"{name}: {outcomes[name]}")
        if self._client:
            self._client.close()
        self.agents.close()
        return outcomes

    def wait_etcd(self, timeout_s: float) -> None:
        """Until every member of our etcd accepts connections on its client port
        (and, with several, they elected a leader: a member only serves a
        request then); LocalClusterError naming the member otherwise."""
        deadline = time.monotonic() + timeout_s
        for endpoint in self.etcd_endpoints:
            host, _, port = endpoint.rpartition(":")
            while True:
                for name, p in self.processes.items():
                    if p.plan.kind is ProcKind.ETCD and not self.running(name):
                        raise LocalClusterError(f"etcd exited at start ({self.exit_status(name)}); see "
                                                f"{p.plan.log}:\n{log_tail(p.plan.log)}")
                try:
                    with socket.create_connection((host, int(port)), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() >= deadline:
                        raise LocalClusterError(f"etcd did not answer on {endpoint} within {timeout_s:g}s") \
                            from None
                    time.sleep(0.05)
        if len(self.etcd_names()) > 1:
            self._wait_etcd_leader(deadline)

    def _wait_etcd_leader(self, deadline: float) -> None:
        import urllib.request
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.etcd_endpoints[0]}/health", timeout=1.0) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise LocalClusterError("the etcd members did not elect a leader in time")
            time.sleep(0.1)

    # ---- health -------------------------------------------------------------------
    def member_health(self) -> list[MemberHealth]:
        return [member_health(n, self.agents.status(self.agent_address(n))) for n in self.node_names()]

    def verdict(self) -> Verdict:
        """Agents' view, plus the active orchestrator's: it names the same leader,
        its state is ``healthy`` and, in sync mode, a synchronous set is published."""
        v = judge(self.member_health())
        if not v.healthy:
            return v
        reply = self.client().active_members()
        if reply is None:
            return Verdict(False, v.leader, ("no active orchestrator answers yet",))
        if not reply.leader.present or reply.leader.name != v.leader:
            return Verdict(False, v.leader, (f"the orchestrator does not name {v.leader} as leader yet",))
        if reply.state != "healthy":
            return Verdict(False, v.leader, (f"the orchestrator is {reply.state}",))
        if self.spec.sync and len(self.node_names()) > 1 and not reply.sync_standbys:
            return Verdict(False, v.leader, ("no synchronous standby set is published yet",))
        return v

    def wait_healthy(self, timeout_s: float, progress: Progress = lambda _m: None,
                     exclude_dead: bool = True) -> Verdict:
        """Poll until healthy; raises LocalClusterError naming the problems on timeout."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            self._check_alive(exclude_dead)
            v = self.verdict()
            if v.healthy:
                return v
            if v.summary() != last:
                last = v.summary()
                progress(f"waiting: {last}")
            if time.monotonic() >= deadline:
                raise LocalClusterError(f"cluster not healthy after {timeout_s:g}s: {v.summary()} "
                                        f"(logs in {self.directory}/logs)")
            time.sleep(0.1)

    def _check_alive(self, strict: bool) -> None:
        if not strict:
            return
        for name, p in self.processes.items():
            if p.handle and not self.running(name):
                raise LocalClusterError(f"{name} exited ({self.exit_status(name)}); see {p.plan.log}:"
                                        f"\n{log_tail(p.plan.log)}")


def log_tail(path: str, lines: int = 4) -> str:
    """The last ``lines`` lines of a log file, indented (for error messages)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _make_traversable(directory: str) -> None:
    """PostgreSQL runs as the postgres user: let it traverse down to DIR."""
    path = directory
    while path not in ("/", ""):
        try:
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                os.chmod(path, mode | 0o001)
        except OSError:
            break
        path = os.path.dirname(path)

