"""``walrus cluster up|down|status|start|stop|restart|signal``: a local cluster
of real processes. ``start|stop|restart|signal NAME`` act on one process; a
node agent is found however it was started (by the pid file it writes in its
data dir). ``signal`` is what ``deploy/drill-hooks/local.yaml`` causes faults with."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from walrus_ha.common.lsn import format_lsn
from walrus_ha.tools.localcluster.cluster import STATE_FILE, LocalCluster, LocalClusterError, log_tail
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start etcd (unless --etcd), N agents and 2 orchestrators")
    up.add_argument("--nodes", type=int, default=3, help="number of database nodes (default 3)")
    up.add_argument("--engine", choices=[e.value for e in EngineKind], default="embedded")
    up.add_argument("--sync", action="store_true", help="synchronous replication (no acknowledged write lost)")
    up.add_argument("--dir", required=True, help="directory for configs, data, logs and cluster.json")
    up.add_argument("--etcd", default="", help="use this etcd (host:port[,host:port]) instead of starting one")
    up.add_argument("--etcd-members", type=int, default=1, choices=(1, 3, 5),
                    help="members of the etcd cluster this starts (default 1)")
    up.add_argument("--orchestrators", type=int, default=2, help="number of orchestrators (default 2)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a healthy cluster")
    up.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    up.add_argument("--json", action="store_true", help="print cluster.json instead of a summary")
    down = sub.add_parser("down", help="stop every process of the cluster, however it was started (by verified PID)")
    down.add_argument("--dir", required=True)
    down.add_argument("--timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    status = sub.add_parser("status", help="processes and members of a local cluster")
    status.add_argument("--dir", required=True)
    status.add_argument("--json", action="store_true")
    for action, text in (("start", "start one stopped process (node, orchestrator or etcd) of the cluster"),
                         ("stop", "stop one process of the cluster, however it was started (by verified PID)"),
                         ("restart", "stop, then start one process of the cluster")):
        one = sub.add_parser(action, help=text)
        one.add_argument("name", metavar="NAME", help="node1.., orch1.. or etcd (see 'cluster status')")
        one.add_argument("--dir", required=True)
        one.add_argument("--timeout", type=float, default=10.0,
                         help="stop: seconds between SIGTERM and SIGKILL; start: seconds to wait for a node "
                              "agent to answer (default 10)")
    sig = sub.add_parser("signal", help="send a signal to one process of the cluster (by verified PID)")
    sig.add_argument("name", metavar="NAME", help="node1.., orch1.. or etcd (see 'cluster status')")
    sig.add_argument("--dir", required=True)
    sig.add_argument("--signal", default="KILL", help="KILL (default), STOP, CONT, TERM, ...")
    sig.add_argument("--tree", action="store_true",
                     help="the process and all its descendants, parents first (a node's postmaster and backends)")


def run(args: argparse.Namespace) -> int:
    return {"up": _up, "down": _down, "status": _status, "start": _start_one, "stop": _stop_one,
            "restart": _restart_one, "signal": _signal_one}[args.action](args)


def _load_with(args: argparse.Namespace) -> LocalCluster:
    """The cluster in --dir, after checking that it has a process called NAME."""
    cluster = LocalCluster.load(args.dir)
    if args.name not in cluster.processes:
        raise LocalClusterError(f"the cluster in {cluster.directory} has no process {args.name!r} "
                                f"(it has: {', '.join(cluster.processes)})")
    return cluster


def _start_one(args: argparse.Namespace, cluster: LocalCluster | None = None) -> int:
    cluster = cluster or _load_with(args)
    name = args.name
    running = cluster.current(name)
    if running is not None:
        print(f"{name} is already running (pid {running.pid})")
        return 0
    handle = cluster.start(name)
    log_path = os.path.relpath(cluster.processes[name].plan.log, cluster.directory)
    print(f"{name} started (pid {handle.pid}, log {log_path})", flush=True)
    if name in cluster.node_names():
        return _await_agent(cluster, name, args.timeout)
    return 0


def _await_agent(cluster: LocalCluster, name: str, timeout_s: float) -> int:
    """Wait until the agent answers GetStatus; 1 (with its log tail) if it exits or stays silent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not cluster.running(name):
            print(f"{name} exited ({cluster.exit_status(name)}); see {cluster.processes[name].plan.log}:\n"
                  f"{log_tail(cluster.processes[name].plan.log)}", file=sys.stderr)
            return 1
        status = cluster.agents.status(cluster.agent_address(name))
        if status is not None:
            print(f"{name} answers on {cluster.agent_address(name)} (state {status.state or '?'}); "
                  f"'walrus cluster status --dir {cluster.directory}' shows when it streams")
            return 0
        time.sleep(0.1)
    print(f"{name} runs but its agent did not answer within {timeout_s:g}s", file=sys.stderr)
    return 1


def _stop_one(args: argparse.Namespace, cluster: LocalCluster | None = None) -> int:
    cluster = cluster or _load_with(args)
    outcome = cluster.stop(args.name, args.timeout)
    print(f"{args.name}: {'was not running' if outcome == 'gone' else outcome}", flush=True)
    if cluster.running(args.name):
        print(f"{args.name} is still running", file=sys.stderr)
        return 1
    return 0


def _signal_one(args: argparse.Namespace) -> int:
    """Signal NAME's process (verified as ours first; ``--tree``: with its
    descendants); 1 when it does not run."""
    import signal as signals

    from walrus_ha.common import procs
    from walrus_ha.tools.drill.freeze import tree_pids
    try:
        sig = signals.Signals["SIG" + args.signal.upper().removeprefix("SIG")]
    except KeyError:
        raise LocalClusterError(f"--signal {args.signal}: not a signal name (KILL, STOP, CONT, ...)") from None
    cluster = _load_with(args)
    handle = cluster.current(args.name)
    if handle is None:
        print(f"{args.name} is not running", file=sys.stderr)
        return 1
    pids = tree_pids(handle.pid) if args.tree else [handle.pid]
    if not procs.send(handle, sig):
        print(f"{args.name} is not running", file=sys.stderr)
        return 1
    for pid in pids[1:]:
        try:
            os.kill(pid, sig)
        except OSError:
            pass                 # exited meanwhile
    print(f"{args.name}: {sig.name} sent to {len(pids)} process(es)", flush=True)
    return 0


def _restart_one(args: argparse.Namespace) -> int:
    cluster = _load_with(args)
    code = _stop_one(args, cluster)
    return code or _start_one(args, cluster)


def _say(quiet: bool):
    def progress(message: str) -> None:
        print(message, file=sys.stderr if quiet else sys.stdout, flush=True)
    return progress


def spec_from_args(args: argparse.Namespace) -> ClusterSpec:
    """Build the ClusterSpec of ``cluster up`` (ValueError -> LocalClusterError)."""
    endpoints = tuple(e.strip().removeprefix("http://") for e in args.etcd.split(",") if e.strip())
    try:
        return ClusterSpec(directory=args.dir, nodes=args.nodes, engine=EngineKind(args.engine), sync=args.sync,
                           etcd_endpoints=endpoints, etcd_members=args.etcd_members,
                           orchestrators=args.orchestrators, log_level=args.log_level)
    except ValueError as exc:
        raise LocalClusterError(str(exc)) from None


def _open_for_up(args: argparse.Namespace, say) -> LocalCluster:
    """A new cluster, or the stopped one already in ``--dir`` (restarted as it was)."""
    if not os.path.exists(os.path.join(args.dir, STATE_FILE)):
        cluster = LocalCluster.create(spec_from_args(args))
        say(f"starting a {args.nodes}-node {args.engine} cluster{' (sync)' if args.sync else ''} "
            f"in {cluster.directory}")
        return cluster
    cluster = LocalCluster.load(args.dir)
    running = [n for n in cluster.processes if cluster.running(n)]
    if running:
        raise LocalClusterError(f"the cluster in {cluster.directory} is running ({', '.join(running)}); "
                                f"'walrus cluster down --dir {args.dir}' first")
    say(f"restarting the stopped cluster in {cluster.directory} as it was configured "
        f"({len(cluster.node_names())} {cluster.spec.engine.value} nodes{', sync' if cluster.spec.sync else ''})")
    return cluster


def _up(args: argparse.Namespace) -> int:
    say = _say(args.json)
    cluster = _open_for_up(args, say)
    try:
        cluster.start_all(say)
        verdict = cluster.wait_healthy(args.timeout, say)
    except BaseException:
        say("start failed; stopping what was started")
        cluster.stop_all(timeout_s=5.0)
        raise
    if args.json:
        print(json.dumps({**cluster.to_json(), "leader": verdict.leader}, indent=2))
    else:
        say(f"cluster is healthy; leader: {verdict.leader}")
        _print_endpoints(cluster)
        print(f"try: walrus ctl list --dir {args.dir}")
    return 0


def _print_endpoints(cluster: LocalCluster) -> None:
    print(f"etcd:          {', '.join(cluster.etcd_endpoints)}")
    print(f"orchestrators: {', '.join(cluster.orchestrator_addresses())}")
    for n in cluster.node_names():
        print(f"{n:<14} agent {cluster.agent_address(n)}  data {cluster.data_address(n)}")


def _down(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(args.dir)
    outcomes = cluster.stop_all(args.timeout, progress=_say(False))
    still = [n for n in outcomes if cluster.running(n)]
    if still:
        print(f"still running: {', '.join(still)}", file=sys.stderr)
        return 1
    print(f"cluster in {cluster.directory} stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(args.dir)
    handles = {n: cluster.current(n) for n in cluster.processes}
    members = cluster.member_health()
    verdict = cluster.verdict() if any(handles.values()) else None
    if args.json:
        print(json.dumps({
            "directory": cluster.directory,
            "healthy": bool(verdict and verdict.healthy), "leader": verdict.leader if verdict else None,
            "problems": list(verdict.problems) if verdict else ["not running"],
            "processes": {n: {"running": h is not None, "pid": h.pid if h else None,
                              "kind": cluster.processes[n].plan.kind.value}
                          for n, h in handles.items()},
            "members": [m.__dict__ for m in members],
        }, indent=2))
        return 0
    print(f"cluster in {cluster.directory}: " + (verdict.summary() if verdict else "not running"))
    for n, h in handles.items():
        print(f"  {n:<10} {cluster.processes[n].plan.kind.value:<13} pid {h.pid if h else '-':<8} "
              f"{'running' if h else 'stopped'}")
    for m in members:
        if m.reachable:
            print(f"  {m.name:<10} {m.role:<8} tl {m.timeline} term {m.term} flush {format_lsn(m.flush_lsn)}"
                  f"{' streaming' if m.streaming else ''}{' fenced' if m.fenced else ''}")
    return 0
