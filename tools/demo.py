"""``walrus demo``: a 3-node embedded cluster, a live workload, a failover.

Brings a local cluster up in a temporary directory, shows writes and the
standbys' lag, SIGKILLs the primary's agent, shows the failover as the
orchestrators announce it (WatchLeader), prints the RPO receipt from
History, restarts the old primary and shows it rejoin, checks that every
acknowledged write is on the new primary, and always cleans up (also on
Ctrl-C, SIGTERM or an error).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time

from walrus_ha.common.lsn import format_lsn
from walrus_ha.tools.drill import checker
from walrus_ha.tools.drill.workload import LeaderTracker, Target, Workload, backend_factory
from walrus_ha.tools.localcluster.cluster import LocalCluster
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--sync", action="store_true", help="synchronous replication (zero acknowledged loss)")
    parser.add_argument("--watch-seconds", type=float, default=4.0, help="how long to show the steady state")
    parser.add_argument("--dir", default="", help="cluster directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the directory (logs) afterwards")


class _Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.2f}s] {message}", flush=True)


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    clock = _Clock()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    directory = args.dir or tempfile.mkdtemp(prefix="walrus-demo-")
    cluster = None
    try:
        cluster = LocalCluster.create(ClusterSpec(directory=directory, nodes=args.nodes,
                                                  engine=EngineKind.EMBEDDED, sync=args.sync))
        clock.say(f"== starting etcd, {args.nodes} node agents and 2 orchestrators in {directory}")
        cluster.start_all(lambda m: clock.say("   " + m))
        verdict = cluster.wait_healthy(90.0, lambda m: clock.say("   " + m))
        clock.say(f"== cluster healthy: leader {verdict.leader}, "
                  f"{'synchronous' if args.sync else 'asynchronous'} replication")
        return _story(cluster, args, clock)
    except KeyboardInterrupt:
        clock.say("interrupted; cleaning up")
        return 130
    finally:
        if cluster is not None:
            clock.say("== stopping every process of the demo cluster")
            cluster.stop_all(10.0)
        if not args.keep and not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
        elif args.keep:
            clock.say(f"kept {directory} (logs in {directory}/logs)")
        signal.signal(signal.SIGTERM, previous)


def _story(cluster: LocalCluster, args: argparse.Namespace, clock: _Clock) -> int:
    client = cluster.client()
    tracker = LeaderTracker(client).start()
    work = Workload(tracker, backend_factory("embedded", args.sync), prefix=f"demo{int(time.time())}",
                    writers=2, sync=args.sync).start()
    try:
        _show_steady_state(cluster, work, clock, args.watch_seconds)
        current = tracker.current() or Target(verdict_leader(cluster), "", cluster.client().get_leader().term)
        old = current.name
        fault_at = time.monotonic()
        tracker.listeners.append(lambda at, t: clock.say(
            f"   WatchLeader: {_describe(t)}  (+{at - fault_at:.3f}s after the kill)"))
        pid = cluster.processes[old].handle.pid
        clock.say(f"== SIGKILL the primary {old}'s agent (pid {pid}) while writes keep coming")
        fault_at = time.monotonic()
        cluster.kill(old)
        found = _wait(lambda: checker.rto(work.snapshot(), fault_at, old), 30.0)
        if not found:
            clock.say("!! no new primary acknowledged a write within 30 s")
            return 1
        rto_s, new = found
        clock.say(f"== {new} acknowledged the first write {rto_s * 1000:.0f} ms after the kill (RTO)")
        _show_receipt(client, clock, after_term=current.term)
        clock.say(f"== restarting {old}: it must come back as a standby of {new}, never as a primary")
        restart_at = time.monotonic()
        cluster.start(old)
        rejoined = _wait(lambda: _streams(cluster, old), 60.0, poll=0.05)
        if rejoined:
            clock.say(f"== {old} streams from {new} again after {time.monotonic() - restart_at:.2f} s")
        else:
            clock.say(f"!! {old} did not rejoin within 60 s")
        work.stop()
        _show_members(cluster, clock)
        return _check(cluster, work, clock) or (0 if rejoined else 1)
    finally:
        work.stop()
        tracker.stop()


def _describe(target: Target | None) -> str:
    return f"leader {target.name} (term {target.term}, data {target.address})" if target else "no leader"


def _wait(predicate, timeout_s: float, poll: float = 0.005):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    return None


def _streams(cluster: LocalCluster, name: str) -> bool:
    m = [m for m in cluster.member_health() if m.name == name][0]
    return m.reachable and m.role == "standby" and m.streaming


def _show_steady_state(cluster: LocalCluster, work: Workload, clock: _Clock, seconds: float) -> None:
    clock.say(f"== a workload writes unique keys to the leader; standbys' lag for {seconds:g} s")
    end = time.monotonic() + seconds
    last = 0
    while time.monotonic() < end:
        time.sleep(1.0)
        acks = len(work.snapshot())
        try:
            reply = cluster.client().list_members()
            lags = ", ".join(f"{m.name} {'primary' if m.is_leader else f'lag {m.lag_bytes} B'}"
                             f" @ {format_lsn(m.flush_lsn)}" for m in sorted(reply.members, key=lambda m: m.name))
        except Exception as exc:   # a display line must not end the demo
            lags = f"(members unavailable: {exc})"
        clock.say(f"   {acks - last:5d} writes/s acknowledged | {lags}")
        last = acks


def _show_members(cluster: LocalCluster, clock: _Clock) -> None:
    from walrus_ha.tools.ctl import members_table
    try:
        reply = cluster.client().active_members() or cluster.client().list_members()
    except Exception as exc:   # a display step must not end the demo
        clock.say(f"   (members unavailable: {exc})")
        return
    clock.say("== the cluster now ('walrus ctl list'):")
    for line in members_table(reply).splitlines():
        print("           " + line)


def _failover_record(client, after_term: int):
    """The newest failover record with a term above ``after_term``, or None."""
    try:
        records = client.history(5).records
    except Exception:   # the orchestrator may be busy finishing the failover; poll again
        return None
    fresh = [r for r in records if r.kind == "failover" and r.term > after_term]
    return max(fresh, key=lambda r: r.term) if fresh else None


def _show_receipt(client, clock: _Clock, after_term: int) -> None:
    # The record is written when the orchestrator finishes, a moment after the promotion.
    r = _wait(lambda: _failover_record(client, after_term), 10.0, poll=0.1)
    if r is None:
        clock.say("   (no failover record in History after 10 s)")
        return
    clock.say(f"== RPO receipt (History, term {r.term}, {r.kind}): {r.old_leader or '?'} -> {r.new_leader}; "
              f"last primary LSN {format_lsn(r.last_primary_lsn)}, promoted at {format_lsn(r.promoted_lsn)}, "
              f"bytes possibly lost {r.bytes_possibly_lost}")
    for c in sorted(r.candidates, key=lambda c: (c.rank == 0, c.rank)):
        clock.say(f"   candidate {c.name}: flush {format_lsn(c.flush_lsn)} rank {c.rank or '-'} {c.reason}")


def verdict_leader(cluster: LocalCluster) -> str:
    return cluster.wait_healthy(30.0).leader


def _check(cluster: LocalCluster, work: Workload, clock: _Clock) -> int:
    acks = work.snapshot()
    leader = cluster.client().get_leader()
    backend = backend_factory("embedded", False)(leader.data_address)
    try:
        present = set(backend.read([a.key for a in acks]))
    finally:
        backend.close()
    lost = checker.lost_writes(acks, present)
    by = ", ".join(f"{n}: {c}" for n, c in sorted(checker.acked_by(acks).items()))
    clock.say(f"== read back {len(acks)} acknowledged writes ({by}) from {leader.name}: {len(lost)} missing")
    return 1 if lost and cluster.spec.sync else 0


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(nodes=3, sync=False, watch_seconds=4.0, dir="", keep=False)))
