"""``walrus drill SCENARIO | campaign | report``: chaos failover drills that
measure RTO and RPO, one fault at a time or every fault in turn.

Runs on a fresh local cluster in a temporary directory (stopped and removed
afterwards, also on Ctrl-C) or on an existing one (``--dir`` with a
cluster.json, left running). ``--json`` writes the report for scripts,
``--html`` a self-contained page people read (``html.py``); ``walrus drill
report FILE.json --html OUT`` renders the page again from the JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator

from walrus_ha.common import log as wlog
from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill import (  # noqa: F401  (the *_faults modules register their scenarios)
    campaign,
    disk_faults,
    etcd_faults,
    freeze_faults,
    html,
    net_faults,
    ops_faults,
)
from walrus_ha.tools.drill.local_target import LocalTarget
from walrus_ha.tools.drill.report import RoundResult, document, problems, rounds_table, summary_text
from walrus_ha.tools.drill.scenarios import SCENARIOS, DrillContext
from walrus_ha.tools.drill.target import DrillTarget, missing_actions
from walrus_ha.tools.drill.workload import LeaderTracker, backend_factory
from walrus_ha.tools.localcluster.cluster import STATE_FILE, LocalCluster
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind, Timings


def _options(parser: argparse.ArgumentParser, rounds: int) -> None:
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds (per fault; default {rounds})")
    parser.add_argument("--sync", action="store_true", help="synchronous replication, writes at commit level on")
    parser.add_argument("--engine", choices=[e.value for e in EngineKind], default="embedded")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--etcd-members", type=int, choices=(1, 3, 5), default=None,
                        help="members of the etcd the drill starts (default: 3 for the campaign and "
                             "etcd-member-loss, else 1)")
    parser.add_argument("--dir", default="", help="use (or create) the local cluster in DIR and keep it")
    parser.add_argument("--writers", type=int, default=2, help="writer threads (default 2)")
    parser.add_argument("--json", default="", metavar="FILE", help="write the report as JSON to FILE")
    parser.add_argument("--html", default="", metavar="FILE", help="write the report as one HTML page to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary cluster directory")
    remote = parser.add_argument_group("remote target (a cluster this drill does not start; docs/internals.md)")
    remote.add_argument("--orchestrators", default="", metavar="[NAME=]HOST:PORT,...",
                        help="drill the cluster of these orchestrators instead of a local one")
    remote.add_argument("--etcd", default="", metavar="HOST:PORT,...", help="its etcd (for the etcd faults)")
    remote.add_argument("--hooks", default="", metavar="FILE.yaml",
                        help="the command per fault action (deploy/drill-hooks/); faults without theirs are n/a")
    remote.add_argument("--hook-var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for the hook commands (repeatable)")
    remote.add_argument("--ttl", type=float, default=None,
                        help="the remote cluster's ttl in seconds (default: the local default, "
                             f"{Timings().ttl:g})")


# One line per fault for ``walrus drill --help``.
HELP = {
    "kill-primary": "SIGKILL the primary's agent (and its engine), then restart it",
    "kill-engine": "SIGKILL the primary's postmaster only (PostgreSQL; n/a on embedded)",
    "freeze-primary": "SIGSTOP the primary's agent for longer than ttl, then thaw it",
    "freeze-tree": "freeze the primary's whole process tree (as docker pause) for longer than ttl",
    "double-kill": "SIGKILL the primary, then the new primary the moment it takes over",
    "etcd-wipe": "restart etcd empty (its data directory removed) under load",
    "kill-standby": "SIGKILL a standby (the synchronous one in sync mode), then restart it",
    "kill-orchestrator": "SIGKILL the primary, then the active orchestrator during the failover",
    "switchover": "a planned switchover under load; RTO = the longest write gap",
    "partition-primary": "cut the primary from etcd and the standbys (iptables + cgroup) for longer than ttl",
    "etcd-member-loss": "SIGKILL one member of a 3-member etcd; writes must go on",
    "etcd-outage": "SIGKILL every etcd member for ttl + 2 s; writes back soon after it returns",
    "corrupt-wal": "flip bytes in a crashed standby's WAL; detected, never replayed, streamed again",
    "disk-full": "fill the primary's filesystem (a small tmpfs the drill mounts); replaced, then rejoins",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="drill", metavar="SCENARIO", required=True)
    for name in sorted(SCENARIOS):
        p = sub.add_parser(name, help=HELP.get(name, name))
        _options(p, rounds=5)
        p.set_defaults(scenario=name)
    c = sub.add_parser("campaign", help="every fault in turn on one cluster; one verdict per fault")
    _options(c, rounds=3)
    c.add_argument("--faults", default=",".join(campaign.ORDER),
                   help=f"comma-separated faults, in order (default: {','.join(campaign.ORDER)})")
    c.set_defaults(scenario="campaign")
    r = sub.add_parser("report", help="render the HTML page of a drill or campaign JSON report again")
    r.add_argument("report_json", metavar="FILE.json")
    r.add_argument("--html", default="", metavar="FILE", help="where to write it (default: FILE.html)")
    r.set_defaults(scenario="report")


def _progress(message: str) -> None:
    print(f"{wlog.timestamp(time.time())} {message}", flush=True)


def _open_cluster(args: argparse.Namespace, disks=None, directory: str = "") -> tuple[LocalCluster, bool]:
    """(cluster, owned): owned clusters are started here and stopped at the end.
    ``disks`` (a fault's ``own_cluster``, e.g. ``disk_faults.SmallDisks``) is
    mounted on the node data dirs before the cluster starts."""
    if args.dir and os.path.exists(os.path.join(args.dir, STATE_FILE)):
        cluster = LocalCluster.load(args.dir)
        if cluster.spec.engine.value != args.engine or cluster.spec.sync != args.sync:
            _progress(f"note: using the cluster in {args.dir} as it is (engine {cluster.spec.engine.value}, "
                      f"sync {cluster.spec.sync})")
        return cluster, False
    directory = directory or args.dir or tempfile.mkdtemp(prefix="walrus-drill-")
    spec = ClusterSpec(directory=directory, nodes=args.nodes, engine=EngineKind(args.engine), sync=args.sync,
                       etcd_members=_etcd_members(args))
    cluster = LocalCluster.create(spec)
    _progress(f"starting a {args.nodes}-node {args.engine} cluster{' (sync)' if args.sync else ''} in {directory}")
    try:
        if disks is not None:
            disks.mount(cluster)
            _progress(f"mounted a {disks.size_mb} MiB tmpfs on every node's data dir")
        cluster.start_all(_progress)
        cluster.wait_healthy(90.0, _progress)
    except BaseException:
        cluster.stop_all(5.0)
        if disks is not None:
            disks.unmount()
        raise
    return cluster, True


def _etcd_members(args: argparse.Namespace) -> int:
    """``--etcd-members``, else what the fault needs (3 for the campaign)."""
    if args.etcd_members:
        return int(args.etcd_members)
    if args.scenario == "campaign":
        return 3
    return int(getattr(SCENARIOS[args.scenario], "needs_etcd_members", 1))


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _session(args: argparse.Namespace, cleanup: list[str], fault: str = "",
             directory: str = "") -> Iterator[DrillContext]:
    """Open the target (a local cluster, with what ``fault`` needs mounted
    first; or the remote one of ``--orchestrators``) and the leader tracker;
    on the way out (also on Ctrl-C or SIGTERM) undo what the drill left in
    force, stop what it started and note in ``cleanup`` what was left."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if args.orchestrators:
        with _remote_session(args, cleanup) as ctx:
            yield ctx
        return
    own = getattr(SCENARIOS.get(fault), "own_cluster", None)
    disks = own() if own else None
    cluster, owned = _open_cluster(args, disks, directory)
    target = LocalTarget(cluster, _progress)
    try:
        with _context(args, target) as ctx:
            yield ctx
    finally:
        released = target.release()
        text = _clean_up(args, cluster, owned, disks)
        cleanup.append(text + (f" ({'; '.join(released)})" if released else ""))


@contextlib.contextmanager
def _context(args: argparse.Namespace, target) -> Iterator[DrillContext]:
    """The drill context over ``target`` (local or remote), its leader tracker running."""
    tracker = LeaderTracker(target.client())
    try:
        tracker.start()
        yield DrillContext(cluster=target, tracker=tracker, progress=_progress, writers=args.writers,
                           factory=backend_factory(target.engine, target.sync))
    finally:
        tracker.stop()


@contextlib.contextmanager
def _remote_session(args: argparse.Namespace, cleanup: list[str]) -> Iterator[DrillContext]:
    from walrus_ha.tools.drill import hooks
    from walrus_ha.tools.drill.hook_target import HookTarget, parse_orchestrators
    hook_file = hooks.load(args.hooks, hooks.parse_hook_vars(args.hook_var)) if args.hooks else None
    target = HookTarget(parse_orchestrators(args.orchestrators), [e.strip() for e in args.etcd.split(",") if e.strip()],
                        hook_file, args.engine, args.sync, args.ttl or Timings().ttl, _progress)
    _progress(f"remote target: {len(target.node_names())} nodes ({', '.join(target.node_names())}), engine "
              f"{target.engine} (from {target.engine_source}), {len(target.etcd_names())} etcd member(s), "
              f"hooks {args.hooks or 'none'}")
    try:
        with _context(args, target) as ctx:
            yield ctx
    finally:
        undone = target.recover()
        target.close()
        cleanup.append("remote cluster left running; " + (f"undo hooks run: {'; '.join(undone)}" if undone
                                                          else "no fault left to undo"))


def _clean_up(args: argparse.Namespace, cluster: LocalCluster, owned: bool, disks=None) -> str:
    if not owned:
        for name in cluster.node_names():      # nothing stays frozen in a cluster we keep
            cluster.signal(name, signal.SIGCONT)
        return f"cluster in {cluster.directory} left running (not started by this drill)"
    cluster.stop_all(10.0)
    left = [n for n in cluster.processes if cluster.running(n)]
    mounts = ""
    if disks is not None:
        stuck = disks.unmount()
        mounts = f", tmpfs mounts removed{' (lazily: ' + ', '.join(stuck) + ')' if stuck else ''}"
    removed = not args.dir and not args.keep
    if removed:
        shutil.rmtree(cluster.directory, ignore_errors=True)
    text = (f"all {len(cluster.processes)} processes stopped" if not left
            else f"STILL RUNNING: {', '.join(left)}") + mounts
    return text + (f", {cluster.directory} removed" if removed else f", data kept in {cluster.directory}")


def _not_applicable(scenario: str, engine: str, members: int | None = None,
                    target: DrillTarget | None = None) -> str | None:
    """Why ``scenario`` cannot run here (engine, etcd size, this host, or a
    remote ``target`` without the hooks it needs); None when it can."""
    fn = SCENARIOS[scenario]
    engines = getattr(fn, "engines", None)
    if engines and engine not in engines:
        return f"{scenario}: not applicable to the {engine} engine (only {', '.join(engines)})"
    needs = getattr(fn, "needs_etcd_members", 1)
    if members is not None and members < needs:
        return (f"{scenario}: not applicable to an etcd of {members} member(s); it needs {needs} "
                f"(--etcd-members {needs}, or 'walrus cluster up --etcd-members {needs}')")
    if target is not None and target.kind != "local":
        local_only = getattr(fn, "local_only", None)
        if local_only:
            return f"{scenario}: not applicable on this target: needs a local cluster ({local_only})"
        actions = getattr(fn, "actions", ())
        if any(a.value.endswith("-etcd") for a in actions) and not target.etcd_names():
            return f"{scenario}: not applicable on this target: needs --etcd"
        return missing_actions(scenario, actions, [a for a in actions if a not in target.missing(actions)])
    unavailable = getattr(fn, "unavailable", None)
    why = unavailable() if unavailable else None
    return f"{scenario}: cannot run on this host: {why}" if why else None


def run(args: argparse.Namespace) -> int:
    if args.scenario == "report":
        return _rerender(args)
    if args.rounds < 1:
        raise WalrusError("--rounds must be at least 1")
    if args.scenario == "campaign":
        return _campaign(args)
    if args.hooks and not args.orchestrators:
        raise WalrusError("--hooks drives a remote cluster: give its --orchestrators too")
    existing = bool(args.dir) and os.path.exists(os.path.join(args.dir, STATE_FILE))
    remote = bool(args.orchestrators)
    why = None if existing or remote else _not_applicable(args.scenario, args.engine, args.etcd_members)
    if why:
        print(why)
        return 0
    rounds: list[RoundResult] = []
    cleanup: list[str] = []
    if existing and not remote and getattr(SCENARIOS[args.scenario], "own_cluster", None):
        print(f"{args.scenario}: needs a cluster the drill starts itself (its data dirs on small mounts); "
              f"drop --dir or point it at a new directory")
        return 0
    with _session(args, cleanup, args.scenario) as ctx:
        why = _not_applicable(args.scenario, ctx.cluster.engine, _members(ctx.cluster), ctx.cluster)
        if why:
            print(why)
            return 0
        sync = ctx.cluster.sync
        config = _config(args, ctx.cluster)
        for n in range(1, args.rounds + 1):
            rounds.append(_one_round(ctx, args.scenario, n))
            if rounds[-1].error and not _recover(ctx):
                break
    _progress(f"cleanup: {cleanup[0]}")
    return _report(args, sync, config, rounds, cleanup[0])


def _campaign(args: argparse.Namespace) -> int:
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in SCENARIOS]
    if unknown:
        raise WalrusError(f"--faults: unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(SCENARIOS))}")
    # Faults that need a cluster of their own (disk-full: tmpfs data dirs) run
    # after the others, each on its own cluster.
    if args.hooks and not args.orchestrators:
        raise WalrusError("--hooks drives a remote cluster: give its --orchestrators too")
    shared = [f for f in faults if args.orchestrators or not getattr(SCENARIOS[f], "own_cluster", None)]
    groups = ([(shared, "")] if shared else []) + [
        ([f], os.path.join(args.dir, f) if args.dir else "") for f in faults if f not in shared]
    state = {"entries": {}, "drills": {}, "done": 0, "total": len(faults) * args.rounds, "config": {}}
    cleanup: list[str] = []
    started = time.monotonic()
    interrupted = False
    try:
        for group, directory in groups:
            why = None if group is shared else _not_applicable(group[0], args.engine, args.etcd_members)
            if why:
                _progress(f"campaign: fault {faults.index(group[0]) + 1}/{len(faults)} {why}")
                state["entries"][group[0]] = campaign.not_applicable(group[0], why)
                state["total"] -= args.rounds
                continue
            with _session(args, cleanup, group[0] if group[0] not in shared else "", directory) as ctx:
                _campaign_group(args, ctx, group, faults, state)
    except KeyboardInterrupt:
        interrupted = True
        _progress("campaign interrupted; writing what ran")
    entries = [state["entries"][f] for f in faults if f in state["entries"]]
    drills, config = state["drills"], state["config"]
    config_done = {**config, "elapsed_s": round(time.monotonic() - started, 1)} if entries else {}
    doc = campaign.document(entries, drills, config_done, "; ".join(cleanup) if cleanup else "unknown",
                            interrupted=interrupted)
    _progress(f"cleanup: {doc['summary']['cleanup']}")
    print()
    for f in entries:
        verdict = "n/a " if f["passed"] is None else "pass" if f["passed"] else "FAIL"
        print(f"{verdict}  {f['fault']:<15} rounds {f['rounds']:>2}  RTO median {_s(f['rto_median_s'])} s  "
              f"p95 {_s(f['rto_p95_s'])}  max {_s(f['rto_max_s'])}  lost {f['lost_acked_writes']}  "
              f"split brain {f['split_brain_events']}  {'; '.join(f['problems']) or f['note']}")
    s = doc["summary"]
    print(f"campaign{' INTERRUPTED' if interrupted else ''}: {s['faults_passed']}/{s['faults']} faults passed, "
          f"{s['rounds_total']} rounds, "
          f"{s['lost_acked_writes_total']} acknowledged writes lost, {s['split_brain_total']} split-brain events, "
          f"{config_done.get('elapsed_s', 0):.0f} s")
    _write(args, doc)
    return 130 if interrupted else 0 if s["passed"] else 1


def _campaign_group(args: argparse.Namespace, ctx: DrillContext, group: list[str], faults: list[str],
                    state: dict) -> None:
    """Run ``group``'s faults on the session's cluster, in campaign order."""
    engine, sync, ttl = ctx.cluster.engine, ctx.cluster.sync, ctx.cluster.ttl
    state["config"] = state["config"] or {**_config(args, ctx.cluster), "scenario": "campaign", "faults": faults}
    members = _members(ctx.cluster)
    for fault in group:
        i = faults.index(fault) + 1
        why = _not_applicable(fault, engine, members, ctx.cluster)
        if why:
            _progress(f"campaign: fault {i}/{len(faults)} {why}")
            state["entries"][fault] = campaign.not_applicable(fault, why)
            state["total"] -= args.rounds
            continue
        _progress(f"campaign: fault {i}/{len(faults)} {fault}, {args.rounds} rounds")
        rounds: list[RoundResult] = []
        try:
            for n in range(1, args.rounds + 1):
                rounds.append(_one_round(ctx, fault, n))
                state["done"] += 1
                _progress(f"campaign {campaign.progress_bar(state['done'], state['total'])}, {fault} round {n}: "
                          f"{'FAILED ' + rounds[-1].error if rounds[-1].error else 'ok'}")
                if rounds[-1].error and not _recover(ctx):
                    break
        finally:
            # Interrupted too: the rounds that finished are kept and judged.
            if rounds:
                state["drills"][fault] = document(rounds, {**state["config"], "scenario": fault})
                state["entries"][fault] = campaign.fault_entry(fault, state["drills"][fault], engine, sync, ttl)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _write(args: argparse.Namespace, doc: dict) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"report written to {args.json}")
    if args.html:
        with open(args.html, "w") as f:
            f.write(html.render(doc))
        print(f"HTML report written to {args.html}")


def _rerender(args: argparse.Namespace) -> int:
    try:
        with open(args.report_json) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise WalrusError(f"{args.report_json}: cannot read a drill report: {exc}") from None
    if not isinstance(doc, dict) or not ("faults" in doc or "rounds" in doc):
        raise WalrusError(f"{args.report_json}: not a walrus drill or campaign report (no 'faults' or 'rounds')")
    out = args.html or os.path.splitext(args.report_json)[0] + ".html"
    with open(out, "w") as f:
        f.write(html.render(doc))
    print(f"HTML report written to {out}")
    return 0


def _one_round(ctx: DrillContext, scenario: str, n: int) -> RoundResult:
    ctx.notes.pop("old_primary", None)
    try:
        return SCENARIOS[scenario](ctx, n)
    except Exception as exc:   # a bug of the drill itself must not lose the whole campaign
        if not isinstance(exc, WalrusError):
            _progress(f"round {n} crashed (a drill bug):\n{traceback.format_exc().rstrip()}")
            exc = WalrusError(f"drill error: {exc!r}")
        _progress(f"round {n} failed: {exc}")
        return RoundResult(round=n, scenario=scenario, old_primary=ctx.notes.get("old_primary", "?"),
                           new_primary=None, rto_s=None, rejoin_s=None, acked_writes=0, lost_acked_writes=0,
                           error=str(exc))


def _recover(ctx: DrillContext) -> bool:
    """After a failed round: undo what is still in force (thaw, heal, restart
    what is down: ``DrillTarget.recover``) and wait for health."""
    try:
        for line in ctx.cluster.recover():
            _progress(f"recover: {line}")
        ctx.cluster.wait_healthy(ctx.healthy_timeout_s, _progress)
        return True
    except WalrusError as exc:
        _progress(f"cluster did not recover, stopping the drill: {exc}")
        return False


def _members(target: DrillTarget) -> int | None:
    """etcd members the target knows of (None: a remote target given no --etcd)."""
    names = target.etcd_names()
    return len(names) if names or target.kind == "local" else None


def _config(args: argparse.Namespace, target: DrillTarget) -> dict:
    return {"scenario": args.scenario, "engine": target.engine, "sync": target.sync,
            "nodes": len(target.node_names()), "rounds": args.rounds, "writers": args.writers,
            **target.describe(), "host_cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _report(args: argparse.Namespace, sync: bool, config: dict, rounds: list[RoundResult], cleanup: str) -> int:
    doc = document(rounds, config)
    found = problems(doc["summary"], sync)
    doc["passed"], doc["problems"] = not found, found
    doc["summary"]["cleanup"] = cleanup
    print()
    print(rounds_table(rounds))
    print(summary_text(doc["summary"]))
    _write(args, doc)
    if found:
        print("drill FAILED: " + "; ".join(found), file=sys.stderr)
    return 1 if found else 0
