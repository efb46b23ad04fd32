"""``HookTarget``: the ``DrillTarget`` of a cluster this machine does not run
(compose, Kubernetes, another host). Facts come from the orchestrators'
gRPC API (members, data and agent addresses; the engine from the agents
when they answer) and from etcd's member list; every fault is a shell
command of a hook file (``hooks.py``), run with its timeout. A hook that
fails or times out raises ``HookFailed`` naming its command, exit code and
stderr, which fails the round. Undo hooks of faults still in force run in
``recover`` (after a failed round and when the drill ends, also on Ctrl-C).
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable

from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import common_pb2
from walrus_ha.tools.drill.hooks import HookFile
from walrus_ha.tools.drill.target import UNDO, Action
from walrus_ha.tools.localcluster.client import AgentClient, ClusterClient
from walrus_ha.tools.localcluster.health import MemberHealth, Verdict, judge, member_health

Runner = Callable[[str, float], "subprocess.CompletedProcess[str]"]
_ROLES = {common_pb2.ROLE_PRIMARY: "primary", common_pb2.ROLE_STANDBY: "standby",
          common_pb2.ROLE_STOPPED: "stopped"}


class HookFailed(WalrusError):
    """A hook command failed, timed out or could not be run."""


def run_shell(command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with /bin/sh; the child is killed on timeout or Ctrl-C."""
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def parse_orchestrators(text: str) -> dict[str, str]:
    """``"o1=127.0.0.1:7401,127.0.0.1:7402"`` -> name -> address (an
    orchestrator without a name is named by its address)."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, address = item.partition("=")
        name, address = (name, address) if sep else (item, item)
        if ":" not in address:
            raise WalrusError(f"--orchestrators {item!r}: expected [NAME=]HOST:PORT")
        out[name] = address
    if not out:
        raise WalrusError("--orchestrators: give at least one HOST:PORT")
    return out


class HookRunner:
    """Runs a hook file's commands (``runner``: the shell, or a fake in
    tests) and remembers the undo of every fault still in force."""

    def __init__(self, hooks: HookFile | None, runner: Runner = run_shell, progress=lambda _m: None,
                 clock: Callable[[], float] = time.monotonic):
        self.hooks, self._runner, self._progress, self._clock = hooks, runner, progress, clock
        self.outstanding: dict[tuple[Action, str], dict[str, str]] = {}

    def actions(self) -> set[Action]:
        return self.hooks.actions() if self.hooks else set()

    def run(self, action: Action, key: str, values: dict[str, str]) -> None:
        """Run ``action``'s hook for ``key`` (a node, member, ...). A fault
        registers its undo first (so ``recover`` runs it even if the fault
        hook fails half-way); an undo clears it. HookFailed on failure."""
        if self.hooks is None:
            raise HookFailed(f"no hook file (--hooks) for {action.value}")
        if action in UNDO:
            self.outstanding[(UNDO[action], key)] = values
        self.outstanding.pop((action, key), None)
        command = self.hooks.render(action, values)
        self._progress(f"hook {action.value}: {command}")
        started = self._clock()
        try:
            done = self._runner(command, self.hooks.timeout_s)
        except subprocess.TimeoutExpired:
            raise HookFailed(f"hook {action.value} timed out after {self.hooks.timeout_s:g}s: {command}") \
                from None
        except OSError as exc:
            raise HookFailed(f"hook {action.value} could not run: {command}: {exc.strerror}") from None
        if done.returncode != 0:
            err = (done.stderr or "").strip().splitlines()[-5:]
            raise HookFailed(f"hook {action.value} failed: `{command}` exited {done.returncode}"
                             f"{': ' + ' | '.join(err) if err else ''}")
        self._progress(f"hook {action.value} done in {self._clock() - started:.3f} s")

    def recover(self) -> list[str]:
        """Run the undo hook of every fault still in force, each once; one line each."""
        done = []
        for (undo, key), values in list(self.outstanding.items()):
            try:
                self.run(undo, key, values)
                done.append(f"{undo.value} {key}".strip())
            except WalrusError as exc:
                self.outstanding.pop((undo, key), None)     # tried once here; the line says why
                done.append(f"{undo.value} {key} FAILED: {exc}")
        return done


class HookTarget:
    """A ``DrillTarget`` over a remote cluster (module docstring)."""

    kind = "remote"

    def __init__(self, orchestrators: dict[str, str], etcd: list[str], hooks: HookFile | None,
                 engine: str, sync: bool, ttl: float, progress=lambda _m: None, runner: Runner = run_shell):
        self._orchestrators = orchestrators
        self._etcd = list(etcd)
        self._hooks = HookRunner(hooks, runner, progress)
        self._hook_path = hooks.path if hooks else ""
        self.sync, self.ttl = sync, ttl
        self._client = ClusterClient(list(orchestrators.values()))
        self._agents = AgentClient(timeout_s=1.0)
        reply = self._client.active_members() or self._client.list_members()
        self._members = {m.name: (m.data_address, m.agent_address) for m in reply.members}
        if not self._members:
            raise WalrusError("the orchestrators list no members")
        reported = [s.engine.engine for s in (self._agents.status(a) for _d, a in self._members.values())
                    if s is not None and s.engine.engine]
        self.agents_direct = len(reported) == len(self._members)
        self.engine = reported[0] if reported else engine
        self.engine_source = "agents" if reported else "--engine"
        self._etcd_members = _etcd_members(self._etcd) if self._etcd else {}

    # ---- facts --------------------------------------------------------------------
    def describe(self) -> dict:
        return {"target": "remote", "orchestrators": dict(self._orchestrators), "etcd": self._etcd,
                "hooks": self._hook_path, "ttl": self.ttl,
                "engine_source": self.engine_source,
                "health_from": "agents" if self.agents_direct else "orchestrator"}

    def node_names(self) -> list[str]:
        return sorted(self._members)

    def data_address(self, name: str) -> str:
        return self._members[name][0]

    def name_of_data_address(self, address: str) -> str | None:
        return next((n for n, (d, _a) in self._members.items() if d == address), None)

    def etcd_names(self) -> list[str]:
        return list(self._etcd_members)

    def orchestrator_names(self) -> list[str]:
        return list(self._orchestrators)

    def orchestrator_addresses(self) -> list[str]:
        return list(self._orchestrators.values())

    def client(self) -> ClusterClient:
        return self._client

    def member_health(self) -> list[MemberHealth]:
        """From the agents when they answer this host, else as the active
        orchestrator sees the members."""
        if self.agents_direct:
            return [member_health(n, self._agents.status(a)) for n, (_d, a) in sorted(self._members.items())]
        reply = self._client.active_members()
        seen = {m.name: m for m in reply.members} if reply is not None else {}
        return [_from_member(n, seen.get(n)) for n in self.node_names()]

    def verdict(self) -> Verdict:
        """As ``LocalCluster.verdict``: the members' view plus the active orchestrator's."""
        v = judge(self.member_health())
        if not v.healthy:
            return v
        reply = self._client.active_members()
        if reply is None:
            return Verdict(False, v.leader, ("no active orchestrator answers yet",))
        if not reply.leader.present or reply.leader.name != v.leader:
            return Verdict(False, v.leader, (f"the orchestrator does not name {v.leader} as leader yet",))
        if reply.state != "healthy":
            return Verdict(False, v.leader, (f"the orchestrator is {reply.state}",))
        if self.sync and len(self._members) > 1 and not reply.sync_standbys:
            return Verdict(False, v.leader, ("no synchronous standby set is published yet",))
        return v

    def wait_healthy(self, timeout_s: float, progress=lambda _m: None) -> Verdict:
        deadline, last = time.monotonic() + timeout_s, ""
        while True:
            v = self.verdict()
            if v.healthy:
                return v
            if v.summary() != last:
                last = v.summary()
                progress(f"waiting: {last}")
            if time.monotonic() >= deadline:
                raise WalrusError(f"cluster not healthy after {timeout_s:g}s: {v.summary()}")
            time.sleep(0.1)

    def wait_etcd(self, timeout_s: float) -> None:
        """Until every --etcd endpoint accepts connections and (with several
        members) etcd reports itself healthy."""
        deadline = time.monotonic() + timeout_s
        for endpoint in self._etcd:
            host, _, port = endpoint.rpartition(":")
            while True:
                try:
                    with socket.create_connection((host, int(port)), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() >= deadline:
                        raise WalrusError(f"etcd did not answer on {endpoint} within {timeout_s:g}s") from None
                    time.sleep(0.05)
        while len(self._etcd_members) > 1 and not _etcd_healthy(self._etcd[0]):
            if time.monotonic() >= deadline:
                raise WalrusError("the etcd members did not elect a leader in time")
            time.sleep(0.1)

    def missing(self, actions: Iterable[Action]) -> list[Action]:
        have = self._hooks.actions()
        return [a for a in actions if a not in have]

    # ---- hooks --------------------------------------------------------------------
    def _run(self, action: Action, key: str, values: dict[str, str]) -> None:
        self._hooks.run(action, key, values)

    def _node(self, name: str) -> dict[str, str]:
        data, agent = self._members[name]
        return {"node": name, "address": data, "agent_address": agent}

    def kill_node(self, name: str) -> None:
        self._run(Action.KILL_NODE, name, self._node(name))

    def start_node(self, name: str) -> None:
        self._run(Action.START_NODE, name, self._node(name))

    def freeze_agent(self, name: str) -> None:
        self._run(Action.FREEZE_AGENT, name, self._node(name))

    def thaw_agent(self, name: str) -> None:
        self._run(Action.THAW_AGENT, name, self._node(name))

    def freeze_node(self, name: str) -> None:
        self._run(Action.FREEZE_NODE, name, self._node(name))

    def thaw_node(self, name: str) -> None:
        self._run(Action.THAW_NODE, name, self._node(name))

    def kill_engine(self, name: str) -> None:
        self._run(Action.KILL_ENGINE, name, self._node(name))

    def engine_instance(self, name: str) -> str | None:
        return None              # not visible from here: the scenario times from the hook's return

    def _cut_values(self, name: str) -> dict[str, str]:
        return {**self._node(name), "etcd_endpoints": " ".join(self._etcd),
                "peers": " ".join(n for n in self.node_names() if n != name)}

    def isolate_node(self, name: str) -> None:
        self._run(Action.ISOLATE_NODE, name, self._cut_values(name))

    def heal_node(self, name: str) -> list[str]:
        self._run(Action.HEAL_NODE, name, self._cut_values(name))
        return []

    def kill_orchestrator(self, name: str) -> None:
        self._run(Action.KILL_ORCHESTRATOR, name, {"orchestrator": name, "address": self._orchestrators[name]})

    def start_orchestrator(self, name: str) -> None:
        self._run(Action.START_ORCHESTRATOR, name, {"orchestrator": name, "address": self._orchestrators[name]})

    def kill_etcd(self, name: str) -> None:
        self._run(Action.KILL_ETCD, name, {"etcd_member": name, "address": self._etcd_members[name]})

    def start_etcd(self, name: str) -> None:
        self._run(Action.START_ETCD, name, {"etcd_member": name, "address": self._etcd_members[name]})

    def wipe_etcd(self) -> None:
        self._run(Action.WIPE_ETCD, "", {"etcd_members": " ".join(self._etcd_members),
                                         "etcd_endpoints": " ".join(self._etcd)})

    def recover(self) -> list[str]:
        """Run the undo hook of every fault still in force; one line each."""
        return self._hooks.recover()

    def close(self) -> None:
        self._client.close()
        self._agents.close()


def _from_member(name: str, m) -> MemberHealth:
    """``MemberHealth`` from a ListMembers ``Member`` (None: not listed)."""
    if m is None or not m.reachable:
        return MemberHealth(name=name, reachable=False)
    return MemberHealth(name=name, reachable=True, role=_ROLES.get(m.role, ""), holds_leader=m.is_leader,
                        fenced=m.fenced, streaming=m.streaming, upstream=m.upstream.partition("@")[0],
                        flush_lsn=m.flush_lsn, timeline=m.timeline, term=m.term)


def _etcd_post(endpoint: str, path: str) -> dict:
    req = urllib.request.Request(f"http://{endpoint}{path}", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=2.0) as r:
        return json.loads(r.read())


def _etcd_members(endpoints: list[str]) -> dict[str, str]:
    """etcd member name -> its client endpoint (``host:port``), from the
    first endpoint that answers the member list; each endpoint names itself
    when none does."""
    for endpoint in endpoints:
        try:
            members = _etcd_post(endpoint, "/v3/cluster/member/list").get("members", [])
        except (OSError, ValueError):
            continue
        out = {}
        for m in members:
            urls = [u.split("://", 1)[-1] for u in m.get("clientURLs", [])]
            if m.get("name") and urls:
                out[m["name"]] = next((u for u in urls if u in endpoints), urls[0])
        if out:
            return dict(sorted(out.items()))
    return {e: e for e in endpoints}


def _etcd_healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=1.0) as r:
            return b'"true"' in r.read()
    except OSError:
        return False
