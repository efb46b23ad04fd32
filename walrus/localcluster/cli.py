"""``walrus cluster up|down|status``: a local cluster of real processes."""
from __future__ import annotations

import argparse
import json
import os
import sys

from walrus.localcluster.cluster import STATE_FILE, LocalCluster, LocalClusterError
from walrus.localcluster.render import ClusterSpec, EngineKind
from walrus.lsn import format_lsn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start etcd (unless --etcd), N agents and 2 orchestrators")
    up.add_argument("--nodes", type=int, default=3, help="number of database nodes (default 3)")
    up.add_argument("--engine", choices=[e.value for e in EngineKind], default="embedded")
    up.add_argument("--sync", action="store_true", help="synchronous replication (no acknowledged write lost)")
    up.add_argument("--dir", required=True, help="directory for configs, data, logs and cluster.json")
    up.add_argument("--etcd", default="", help="use this etcd (host:port[,host:port]) instead of starting one")
    up.add_argument("--orchestrators", type=int, default=2, help="number of orchestrators (default 2)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a healthy cluster")
    up.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    up.add_argument("--json", action="store_true", help="print cluster.json instead of a summary")
    down = sub.add_parser("down", help="stop every process the cluster started (by PID)")
    down.add_argument("--dir", required=True)
    down.add_argument("--timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    status = sub.add_parser("status", help="processes and members of a local cluster")
    status.add_argument("--dir", required=True)
    status.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    return {"up": _up, "down": _down, "status": _status}[args.action](args)


def _say(quiet: bool):
    def progress(message: str) -> None:
        print(message, file=sys.stderr if quiet else sys.stdout, flush=True)
    return progress


def spec_from_args(args: argparse.Namespace) -> ClusterSpec:
    """Build the ClusterSpec of ``cluster up`` (ValueError -> LocalClusterError)."""
    endpoints = tuple(e.strip().removeprefix("http://") for e in args.etcd.split(",") if e.strip())
    try:
        return ClusterSpec(directory=args.dir, nodes=args.nodes, engine=EngineKind(args.engine), sync=args.sync,
                           etcd_endpoints=endpoints, orchestrators=args.orchestrators, log_level=args.log_level)
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
    procs_state = {n: cluster.running(n) for n in cluster.processes}
    members = cluster.member_health()
    verdict = cluster.verdict() if any(procs_state.values()) else None
    if args.json:
        print(json.dumps({
            "directory": cluster.directory,
            "healthy": bool(verdict and verdict.healthy), "leader": verdict.leader if verdict else None,
            "problems": list(verdict.problems) if verdict else ["not running"],
            "processes": {n: {"running": r, "pid": cluster.processes[n].handle.pid if cluster.processes[n].handle
                              else None, "kind": cluster.processes[n].plan.kind.value}
                          for n, r in procs_state.items()},
            "members": [m.__dict__ for m in members],
        }, indent=2))
        return 0
    print(f"cluster in {cluster.directory}: " + (verdict.summary() if verdict else "not running"))
    for n, r in procs_state.items():
        h = cluster.processes[n].handle
        print(f"  {n:<10} {cluster.processes[n].plan.kind.value:<13} pid {h.pid if h else '-':<8} "
              f"{'running' if r else 'stopped'}")
    for m in members:
        if m.reachable:
            print(f"  {m.name:<10} {m.role:<8} tl {m.timeline} term {m.term} flush {format_lsn(m.flush_lsn)}"
                  f"{' streaming' if m.streaming else ''}{' fenced' if m.fenced else ''}")
    return 0
