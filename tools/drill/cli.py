"""``walrus drill SCENARIO``: chaos failover drills that measure RTO and RPO.

Runs on a fresh local cluster in a temporary directory (stopped afterwards)
or on an existing one (``--dir`` with a cluster.json, left running).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill.report import RoundResult, document, rounds_table, summary_text
from walrus_ha.tools.drill.scenarios import SCENARIOS, DrillContext
from walrus_ha.tools.drill.workload import LeaderTracker, backend_factory
from walrus_ha.tools.localcluster.cluster import STATE_FILE, LocalCluster
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", choices=sorted(SCENARIOS), help="what to break")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync", action="store_true", help="synchronous replication, writes at commit level on")
    parser.add_argument("--engine", choices=[e.value for e in EngineKind], default="embedded")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--dir", default="", help="use (or create) the local cluster in DIR and keep it")
    parser.add_argument("--writers", type=int, default=2, help="writer threads (default 2)")
    parser.add_argument("--json", default="", metavar="FILE", help="write the report as JSON to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary cluster directory")


def _progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _open_cluster(args: argparse.Namespace) -> tuple[LocalCluster, bool]:
    """(cluster, owned): owned clusters are started here and stopped at the end."""
    if args.dir and os.path.exists(os.path.join(args.dir, STATE_FILE)):
        cluster = LocalCluster.load(args.dir)
        if cluster.spec.engine.value != args.engine or cluster.spec.sync != args.sync:
            _progress(f"note: using the cluster in {args.dir} as it is (engine {cluster.spec.engine.value}, "
                      f"sync {cluster.spec.sync})")
        return cluster, False
    directory = args.dir or tempfile.mkdtemp(prefix="walrus-drill-")
    spec = ClusterSpec(directory=directory, nodes=args.nodes, engine=EngineKind(args.engine), sync=args.sync)
    cluster = LocalCluster.create(spec)
    _progress(f"starting a {args.nodes}-node {args.engine} cluster{' (sync)' if args.sync else ''} in {directory}")
    try:
        cluster.start_all(_progress)
        cluster.wait_healthy(90.0, _progress)
    except BaseException:
        cluster.stop_all(5.0)
        raise
    return cluster, True


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise WalrusError("--rounds must be at least 1")
    # SIGTERM cleans up like Ctrl-C: the cluster's processes live in their own sessions.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    engines = getattr(SCENARIOS[args.scenario], "engines", None)
    existing = bool(args.dir) and os.path.exists(os.path.join(args.dir, STATE_FILE))
    if engines and args.engine not in engines and not existing:
        print(f"{args.scenario}: not applicable to the {args.engine} engine (only {', '.join(engines)})")
        return 0
    cluster, owned = _open_cluster(args)
    if engines and cluster.spec.engine.value not in engines:
        print(f"{args.scenario}: not applicable to the {cluster.spec.engine.value} engine "
              f"(only {', '.join(engines)})")
        return 0
    tracker = LeaderTracker(cluster.client())
    rounds: list[RoundResult] = []
    try:
        tracker.start()
        ctx = DrillContext(cluster=cluster, tracker=tracker, progress=_progress, writers=args.writers,
                           factory=backend_factory(cluster.spec.engine.value, cluster.spec.sync))
        for n in range(1, args.rounds + 1):
            rounds.append(_one_round(ctx, args.scenario, n))
            if rounds[-1].error and not _recover(ctx):
                break
    finally:
        tracker.stop()
        if owned and not args.dir:
            cluster.stop_all(10.0)
            if not args.keep:
                shutil.rmtree(cluster.directory, ignore_errors=True)
        elif owned:
            cluster.stop_all(10.0)
    return _report(args, cluster, rounds)


def _one_round(ctx: DrillContext, scenario: str, n: int) -> RoundResult:
    ctx.notes.pop("old_primary", None)
    try:
        return SCENARIOS[scenario](ctx, n)
    except WalrusError as exc:
        _progress(f"round {n} failed: {exc}")
        return RoundResult(round=n, scenario=scenario, old_primary=ctx.notes.get("old_primary", "?"),
                           new_primary=None, rto_s=None, rejoin_s=None, acked_writes=0, lost_acked_writes=0,
                           error=str(exc))


def _recover(ctx: DrillContext) -> bool:
    """After a failed round: thaw/restart whatever is down and wait for health."""
    for name in ctx.cluster.node_names():
        ctx.cluster.signal(name, signal.SIGCONT)
        if not ctx.cluster.running(name):
            ctx.cluster.start(name)
    try:
        ctx.cluster.wait_healthy(ctx.healthy_timeout_s, _progress)
        return True
    except WalrusError as exc:
        _progress(f"cluster did not recover, stopping the drill: {exc}")
        return False


def _report(args: argparse.Namespace, cluster: LocalCluster, rounds: list[RoundResult]) -> int:
    t = cluster.spec.timings
    config = {"scenario": args.scenario, "engine": cluster.spec.engine.value, "sync": cluster.spec.sync,
              "nodes": len(cluster.node_names()), "rounds": args.rounds, "writers": args.writers,
              "ttl": t.ttl, "loop_wait": t.loop_wait, "orch_loop_wait": t.orch_loop_wait,
              "retry_timeout": t.retry_timeout, "safety_margin": t.safety_margin,
              "host_cpus": os.cpu_count()}
    doc = document(rounds, config)
    print()
    print(rounds_table(rounds))
    print(summary_text(doc["summary"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"report written to {args.json}")
    s = doc["summary"]
    bad = (s["failed_rounds"] or s["dual_primary_acks_total"] or s["lost_acked_by_survivors_total"]
           or (cluster.spec.sync and s["lost_acked_writes_total"]))
    if bad:
        print("drill FAILED: " + ("failed rounds" if s["failed_rounds"] else "safety violation"), file=sys.stderr)
    return 1 if bad else 0
