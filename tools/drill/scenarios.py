"""Drill scenarios: one round each, on a healthy local cluster.

* ``kill-primary``: SIGKILL the primary's agent under a write workload;
  RTO = kill -> first write acknowledged by the new primary; restart the
  killed agent and time its rejoin as a streaming standby; read every
  acknowledged key back from the new primary.
* ``freeze-primary``: SIGSTOP the primary's agent for longer than ttl (a hung
  or partitioned primary: no fast path, the lease must expire); time to a new
  primary; SIGCONT; a stale writer aimed at the old primary checks that no
  write is acknowledged by two primaries at once.
"""
from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill import checker, timeline
from walrus_ha.tools.drill.checker import Ack
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.workload import BackendFactory, EmbeddedBackend, LeaderTracker, StaleWriter, Workload
from walrus_ha.tools.localcluster.cluster import LocalCluster

Progress = Callable[[str], None]


class RoundFailed(WalrusError):
    """A round could not complete (no new primary, no rejoin, cluster unhealthy)."""


@dataclass
class DrillContext:
    cluster: LocalCluster
    tracker: LeaderTracker
    factory: BackendFactory
    progress: Progress
    writers: int = 2
    warmup_s: float = 1.0
    failover_timeout_s: float = 30.0
    rejoin_timeout_s: float = 60.0
    healthy_timeout_s: float = 60.0
    notes: dict = field(default_factory=dict)


def traits(**values: object) -> Callable[[Callable], Callable]:
    """Declare what the CLI needs to know of a scenario on its function:
    ``engines`` (where it applies), ``unavailable`` (a callable saying why it
    cannot run on this host, or None), ``needs_etcd_members``, ``own_cluster``
    (something to mount before its cluster starts)."""
    def attach(fn: Callable) -> Callable:
        for key, value in values.items():
            setattr(fn, key, value)
        return fn
    return attach


def mark(ctx: DrillContext, what: str) -> float:
    """Note an instant of the round (for its timeline) and return it."""
    at = time.monotonic()
    ctx.notes.setdefault("events", []).append((at, what))
    return at


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.005):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RoundFailed(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(poll_s)


def wait_rejoined(ctx: DrillContext, name: str, new_primary: str | None) -> float:
    """Monotonic time at which ``name`` streams as a standby again."""
    def ok() -> bool:
        m = [m for m in ctx.cluster.member_health() if m.name == name][0]
        return m.reachable and m.role == "standby" and m.streaming and (
            not new_primary or not m.upstream or m.upstream == new_primary)
    wait_for(ok, ctx.rejoin_timeout_s, f"{name} to stream as a standby", poll_s=0.02)
    return time.monotonic()


def _history_receipt(ctx: DrillContext, term_after: int, wait_exact_s: float = 5.0) -> dict:
    """The round's history record; waits up to ``wait_exact_s`` for its exact
    receipt (completed once the old leader rejoined and reported its discard)."""
    deadline = time.monotonic() + wait_exact_s
    while True:
        try:
            records = ctx.cluster.client().history(5).records
        except WalrusError:
            return {}
        r = next((r for r in records if r.term == term_after or (term_after == 0 and r.kind == "failover")), None)
        if r is None:
            return {}
        if r.discarded_by or time.monotonic() >= deadline:
            return {"term": r.term, "kind": r.kind, "old_leader": r.old_leader, "new_leader": r.new_leader,
                    "last_primary_lsn": r.last_primary_lsn, "promoted_lsn": r.promoted_lsn,
                    "bytes_possibly_lost": r.bytes_possibly_lost, "discarded_by": r.discarded_by,
                    "discarded_bytes": r.discarded_bytes, "discarded_records": r.discarded_records,
                    "discarded_transactions": r.discarded_transactions}
        time.sleep(0.1)


def _read_values(ctx: DrillContext, name_or_address: str, keys: list[str]) -> dict[str, str]:
    backend = ctx.factory(name_or_address)
    try:
        return backend.read(keys)
    finally:
        backend.close()


def _standby_gaps(ctx: DrillContext, leader: str, expected: dict[str, str],
                  catch_up_s: float = 15.0) -> dict[str, int]:
    """For every standby, how many of ``expected`` (key -> value, what the
    leader holds of the acknowledged writes) it does not hold with that value
    once it caught up (polled up to ``catch_up_s``); 0 for each when all is well."""
    gaps: dict[str, int] = {}
    keys = list(expected)
    deadline = time.monotonic() + catch_up_s
    for name in ctx.cluster.node_names():
        if name == leader:
            continue
        while True:
            try:
                got = _read_values(ctx, ctx.cluster.data_address(name), keys)
                gaps[name] = sum(1 for k, v in expected.items() if got.get(k) != v)
            except WalrusError:
                gaps[name] = len(keys)
            if not gaps[name] or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    return gaps


@dataclass(frozen=True)
class _Tally:
    """What a round ends with: its acknowledged writes, those missing on the
    leader (count, sample, by acknowledging node), those the leader holds
    with another value, what each standby lacks of the leader's, and the
    leader's term."""
    acks: list[Ack]
    lost: int
    sample: list[str]
    lost_by: dict
    term_after: int
    wrong_values: int = 0
    standby_missing: dict = field(default_factory=dict)


def tally(ctx: DrillContext, acks: list[Ack]) -> _Tally:
    """Wait until the cluster is healthy again, then read every acknowledged
    key back with its value: from the leader (lost, wrong value), then from
    every standby (each must hold what the leader holds)."""
    ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    leader = ctx.cluster.client().get_leader()
    keys = sorted({a.key for a in acks})
    held = _read_values(ctx, leader.data_address, keys)
    lost = checker.lost_writes(acks, set(held))
    wrong = [k for k in checker.wrong_values(acks, {k: held.get(k) for k in keys}) if k in held]
    gaps = _standby_gaps(ctx, leader.name, {k: held[k] for k in keys if k in held})
    return _Tally(acks, len(lost), lost[:10], checker.lost_by_node(acks, lost), leader.term,
                  len(wrong), gaps)


def result(ctx: DrillContext, work: Workload, t: _Tally, number: int, scenario: str, old: str, new: str | None,
            rto_s: float, rejoin_s: float | None, term_before: int, receipt: bool = True, **fields) -> RoundResult:
    """The round's ``RoundResult`` (``fields``: the scenario's own ones); with
    ``receipt`` the history record of the term the round ended in."""
    brains = checker.split_brain(t.acks)
    fields.setdefault("timeline", timeline.build(t.acks, ctx.notes.get("events", ()), ctx.cluster.node_names()))
    fields.setdefault("split_brain", len(brains))
    fields.setdefault("split_brain_sample", tuple(e.describe() for e in brains[:5]))
    return RoundResult(round=number, scenario=scenario, old_primary=old, new_primary=new, rto_s=rto_s,
                       rejoin_s=rejoin_s, acked_writes=len(t.acks), lost_acked_writes=t.lost,
                       wrong_values=t.wrong_values, standby_missing=t.standby_missing,
                       failed_writes=work.failures, term_before=term_before, term_after=t.term_after,
                       acked_by=checker.acked_by(t.acks),
                       rpo_receipt=_history_receipt(ctx, t.term_after) if receipt else {},
                       lost_keys_sample=tuple(t.sample), lost_by_node=t.lost_by, **fields)


def start_round(ctx: DrillContext, number: int, scenario: str) -> tuple[str, int, Workload]:
    verdict = ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    old = verdict.leader
    ctx.notes["old_primary"] = old     # for the report if the round fails
    ctx.notes["events"] = []
    term_before = ctx.cluster.client().get_leader().term
    work = Workload(ctx.tracker, ctx.factory, prefix=f"{scenario[:1]}{int(time.time())}r{number}",
                    writers=ctx.writers, sync=ctx.cluster.spec.sync).start()
    wait_for(lambda: len(work.snapshot()) >= 5, 15.0, "the workload's first acknowledged writes", 0.02)
    time.sleep(ctx.warmup_s)
    return old, term_before, work


def kill_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One kill-primary round (see the module docstring)."""
    old, term_before, work = start_round(ctx, number, "kill-primary")
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); {len(work.snapshot())} writes "
                 f"acknowledged; SIGKILL {old}'s agent")
    fault_at = mark(ctx, f"SIGKILL {old}")
    ctx.cluster.kill(old)
    try:
        found = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old), ctx.failover_timeout_s,
                          "a write acknowledged by a new primary")
    finally:
        time.sleep(0.3)
        work.stop()
    rto_s, new = found
    ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the kill; "
                 f"restarting {old}")
    restart_at = mark(ctx, f"restart {old}")
    ctx.cluster.start(old)
    rejoin_s = wait_rejoined(ctx, old, new) - restart_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: {old} streams again after {rejoin_s:.3f} s; {len(t.acks)} acknowledged "
                 f"writes, {t.lost} missing on {new}")
    return result(ctx, work, t, number, "kill-primary", old, new, rto_s, rejoin_s, term_before)


def freeze_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One freeze-primary round (see the module docstring)."""
    old, term_before, work = start_round(ctx, number, "freeze-primary")
    ttl = ctx.cluster.spec.timings.ttl
    stale = StaleWriter(stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); SIGSTOP {old}'s agent")
    fault_at = mark(ctx, f"SIGSTOP {old}'s agent")
    ctx.cluster.signal(old, signal.SIGSTOP)
    try:
        try:
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                   ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
        finally:
            # Stay frozen for longer than ttl in any case, then thaw.
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))
            thaw_at = mark(ctx, f"thaw {old}")
            ctx.cluster.signal(old, signal.SIGCONT)
        ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the freeze; "
                     f"{old} thawed after {thaw_at - fault_at:.1f} s")
        rejoin_s = wait_rejoined(ctx, old, new) - thaw_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
    acks = work.snapshot()
    dual = checker.dual_primary_acks(acks + stale.acks, old, new)
    t = tally(ctx, acks + [a for a in stale.acks if a.at < fault_at])
    ctx.progress(f"round {number}: {old} streams again {rejoin_s:.3f} s after thawing; "
                 f"{len(dual)} writes acknowledged by two primaries; {t.lost} acknowledged writes missing")
    return result(ctx, work, t, number, "freeze-primary", old, new, rto_s, rejoin_s, term_before,
                   dual_primary_acks=len(dual), frozen_s=thaw_at - fault_at)


def stale_backend(ctx: DrillContext, name: str):
    address = ctx.cluster.data_address(name)
    if ctx.cluster.spec.engine.value == "embedded":
        # A long timeout: the request stuck in the frozen process is answered after the thaw.
        return EmbeddedBackend(address, ctx.cluster.spec.sync, timeout_s=ctx.cluster.spec.timings.ttl * 4)
    return ctx.factory(address)


def _wipe_etcd(ctx: DrillContext) -> float:
    """Stop every member of the cluster's etcd, remove their data
    directories, start them empty on the same addresses (one new cluster);
    returns the monotonic time etcd answers again."""
    import shutil
    names = ctx.cluster.etcd_names()
    for name in names:
        ctx.cluster.stop(name)
    for name in names:
        argv = list(ctx.cluster.processes[name].plan.argv)
        shutil.rmtree(argv[argv.index("--data-dir") + 1], ignore_errors=True)
    for name in names:
        ctx.cluster.start(name)
    ctx.cluster.wait_etcd(15.0 * len(names))
    return time.monotonic()


def _first_ack_above(ctx: DrillContext, work: Workload, after: float, term: int) -> tuple[float, str] | None:
    """(seconds from ``after`` to the first write acknowledged at a term above
    ``term``, its node). The embedded engine answers with its term. A
    PostgreSQL ack carries its timeline, which a leader keeping its place
    through a re-seed does not change: there, an ack counts once the leader
    stream named a term above ``term``."""
    by_term = ctx.cluster.spec.engine.value == "embedded"
    since = next((t for t, target in list(ctx.tracker.changes) if target and target.term > term), None)
    for a in sorted(work.snapshot(), key=lambda a: a.at):
        if a.at > after and (a.term > term if by_term else since is not None and a.at > since):
            return a.at - after, a.node
    return None


def etcd_wipe_round(ctx: DrillContext, number: int) -> RoundResult:
    """etcd loses its data (stopped, data directory removed, started empty on
    the same address) while every member keeps its own. RTO = etcd answering
    again -> first write acknowledged at a term above the one before."""
    old, term_before, work = start_round(ctx, number, "etcd-wipe")
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); wiping etcd")
    try:
        mark(ctx, "wipe etcd")
        back_at = _wipe_etcd(ctx)
        mark(ctx, "etcd back, empty")
        rto_s, new = wait_for(lambda: _first_ack_above(ctx, work, back_at, term_before), ctx.failover_timeout_s,
                               "a write acknowledged at a newer term")
    finally:
        time.sleep(0.3)
        work.stop()
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: {new} acknowledged at term {t.term_after} {rto_s:.3f} s after etcd came back "
                 f"empty; {len(t.acks)} acknowledged writes, {t.lost} missing")
    return result(ctx, work, t, number, "etcd-wipe", old, new, rto_s, None, term_before)


SCENARIOS: dict[str, Callable[[DrillContext, int], RoundResult]] = {
    "kill-primary": kill_primary_round,
    "freeze-primary": freeze_primary_round,
    "etcd-wipe": etcd_wipe_round,
}


# -- kill-engine (issue 10 item 1) ------------------------------------------------------
import os  # noqa: E402  (kept with the scenario that needs it)


def _postmaster_pid(ctx: DrillContext, name: str) -> int:
    """The PID named by ``name``'s postmaster.pid (0 when absent or unreadable)."""
    path = f"{ctx.cluster.spec.directory}/data/{name}/pgdata/postmaster.pid"
    try:
        with open(path) as f:
            return int(f.readline().strip() or 0)
    except (OSError, ValueError):
        return 0


def kill_engine_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL the primary's postmaster only (its agent lives on). RTO = kill ->
    first write acknowledged after a new postmaster (same node) appeared, or by
    another node (a failover). PostgreSQL only: the embedded engine lives in
    the agent's process, so "the engine alone" cannot die."""
    old, term_before, work = start_round(ctx, number, "kill-engine")
    pid = _postmaster_pid(ctx, old)
    if not pid:
        raise RoundFailed(f"no postmaster.pid for {old}")
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); SIGKILL its postmaster {pid}")
    fault_at = mark(ctx, f"SIGKILL {old}'s postmaster")
    os.kill(pid, signal.SIGKILL)
    try:
        restarted = [0.0]

        def writable():
            if not restarted[0] and _postmaster_pid(ctx, old) not in (0, pid):
                restarted[0] = time.monotonic()
            acks = work.snapshot()
            other = checker.first_ack_after(acks, fault_at, old)
            mine = checker.first_ack_after(acks, restarted[0], "") if restarted[0] else None
            best = min((a for a in (other, mine) if a is not None), key=lambda a: a.at, default=None)
            return (best.at - fault_at, best.node) if best is not None else None
        rto_s, new = wait_for(writable, ctx.failover_timeout_s, "a write acknowledged after the kill")
    finally:
        time.sleep(0.3)
        work.stop()
    ctx.progress(f"round {number}: {new} acknowledged a write {rto_s:.3f} s after the kill"
                 f"{' (in place)' if new == old else ' (failed over)'}")
    rejoin_s = 0.0 if new == old else wait_rejoined(ctx, old, new) - fault_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: {len(t.acks)} acknowledged writes, {t.lost} missing; term {term_before} -> "
                 f"{t.term_after}")
    return result(ctx, work, t, number, "kill-engine", old, new, rto_s, rejoin_s, term_before,
                   receipt=t.term_after != term_before)


kill_engine_round.engines = ("postgres",)    # the drill says "not applicable" for other engines
SCENARIOS["kill-engine"] = kill_engine_round


# -- freeze-tree (issue 10 item 6) ------------------------------------------------------

class _TreeSignals:
    """The cluster, except that SIGSTOP / SIGCONT of a node freeze / thaw its
    whole process tree at once (agent, postmaster, backends, fencer), as
    ``docker pause`` does (``tools.drill.freeze``)."""

    def __init__(self, cluster: LocalCluster, progress: Progress):
        self._cluster, self._progress = cluster, progress
        self.frozen: dict = {}

    def __getattr__(self, name: str):
        return getattr(self._cluster, name)

    def signal(self, name: str, sig: int) -> bool:
        from walrus_ha.common import procs
        from walrus_ha.tools.drill.freeze import TreeFreeze
        handle = self._cluster.processes[name].handle
        if sig == signal.SIGSTOP and name not in self.frozen and handle and procs.is_ours(handle):
            tree = self.frozen[name] = TreeFreeze(handle.pid)
            pids = tree.freeze()
            self._progress(f"froze {name}'s whole tree ({len(pids)} processes, {tree.method})")
            return True
        if sig == signal.SIGCONT and name in self.frozen:
            self.frozen.pop(name).thaw()
            return True
        return self._cluster.signal(name, sig)


class _GiveUpBackend:
    """A backend whose write gives up after ``timeout_s`` (a frozen server
    answers nothing, and PostgreSQL's own timeouts are frozen with it), so the
    workload moves on to the new primary. An abandoned write still counts if
    the old primary acknowledges it after the thaw: it lands in ``late``.
    ``sent`` maps every key to the instant its write was sent."""

    def __init__(self, factory, address: str, node: str, late: list, sent: dict, timeout_s: float):
        self._factory, self.address, self.node = factory, address, node
        self._late, self._sent, self._timeout = late, sent, timeout_s
        self._inner = None

    def write(self, key: str, value: str) -> int:
        import threading

        from walrus_ha.tools.drill.workload import WriteFailed
        inner = self._inner = self._inner or self._factory(self.address)
        box: dict = {}
        abandoned = threading.Event()

        def run() -> None:
            try:
                box["term"] = inner.write(key, value)
                if abandoned.is_set():
                    self._late.append(Ack(key, time.monotonic(), self.node, box["term"], value))
            except Exception as exc:            # WriteFailed or anything: not acknowledged
                box["error"] = exc
            finally:
                box["done"] = True
        self._sent[key] = time.monotonic()
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(self._timeout)
        if "done" not in box:
            abandoned.set()
            self._inner = None                  # its connection is busy; the next write opens another
            raise WriteFailed(f"{self.address}: no answer within {self._timeout:g}s")
        if "error" in box:
            raise box["error"]
        return box["term"]

    def existing(self, keys: list[str]) -> set[str]:
        return set(self.read(keys))

    def read(self, keys: list[str]) -> dict[str, str]:
        self._inner = self._inner or self._factory(self.address)
        return self._inner.read(keys)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def freeze_tree_round(ctx: DrillContext, number: int) -> RoundResult:
    """Freeze the primary's whole process tree (agent, postmaster, backends,
    fencer) for longer than ttl, as ``docker pause`` does, then thaw it.
    ``dual_primary_acks``: acks by the old primary later than the new
    primary's first; ``extra.sent_after_freeze``: those of writes sent after
    the freeze began (the target's violations; the rest are late replies to
    writes already in flight at the freeze); lost counts every ack."""
    import dataclasses
    tree = _TreeSignals(ctx.cluster, ctx.progress)
    late: list[Ack] = []
    sent: dict[str, float] = {}
    factory = ctx.factory

    def giving_up(address: str):
        node = ctx.cluster.name_of_data_address(address) or address
        return _GiveUpBackend(factory, address, node, late, sent, 1.0)
    ctx = dataclasses.replace(ctx, cluster=tree, factory=giving_up)
    old, term_before, work = start_round(ctx, number, "freeze-tree")
    ttl = ctx.cluster.spec.timings.ttl
    stale = StaleWriter(stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    fault_at = mark(ctx, f"freeze {old}'s process tree")
    tree.signal(old, signal.SIGSTOP)
    try:
        try:
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                   ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
        finally:
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))
            thaw_at = time.monotonic()
            tree.signal(old, signal.SIGCONT)
        rejoin_s = wait_rejoined(ctx, old, new) - thaw_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
        for name in list(tree.frozen):
            tree.signal(name, signal.SIGCONT)
    all_acks = work.snapshot() + stale.acks + late
    dual = checker.dual_primary_acks(all_acks, old, new)
    after = [a for a in dual if sent.get(a.key, 0.0) > fault_at]
    t = tally(ctx, all_acks)
    ctx.progress(f"round {number}: {new} first acknowledged {rto_s:.3f} s after the freeze; {old} thawed after "
                 f"{thaw_at - fault_at:.1f} s, streams again {rejoin_s:.3f} s later; old primary acks after the "
                 f"new one's first: {len(dual)} ({len(after)} sent after the freeze); {t.lost} acked writes lost")
    return result(ctx, work, t, number, "freeze-tree", old, new, rto_s, rejoin_s, term_before,
                   dual_primary_acks=len(dual), frozen_s=thaw_at - fault_at,
                   extra={"sent_after_freeze": len(after), "late_acks": len(late)})


SCENARIOS["freeze-tree"] = freeze_tree_round


# -- double-kill (issue 10 item 2) ------------------------------------------------------

def double_kill_round(ctx: DrillContext, number: int) -> RoundResult:
    """``double-kill``: SIGKILL the primary, then SIGKILL the new primary the
    moment its leader key appears (before it has standbys or, in synchronous
    mode, a set of its own), and restart the first one at once, as a
    supervisor would (in synchronous mode the third node needs a standby to
    acknowledge anything). RTO = second kill -> first write acknowledged by
    the next primary (the third node, or the restarted first one); the
    second one is restarted after that; the others must rejoin, and every
    acknowledged write must be on the last primary."""
    first, term_before, work = start_round(ctx, number, "double-kill")
    ctx.progress(f"round {number}: primary is {first} (term {term_before}); SIGKILL {first}'s agent")
    mark(ctx, f"SIGKILL {first}")
    ctx.cluster.kill(first)
    try:
        heir = wait_for(lambda: (t := ctx.tracker.current()) is not None and t.name != first
                         and t.term > term_before and t.name, ctx.failover_timeout_s, "a new leader key")
        fault_at = mark(ctx, f"SIGKILL {heir} (new leader)")
        ctx.cluster.kill(heir)
        ctx.notes["old_primary"] = f"{first}+{heir}"
        ctx.cluster.start(first)
        ctx.progress(f"round {number}: {heir} took the leader key; SIGKILL {heir}'s agent, restart {first}")
        wait_for(lambda: (t := ctx.tracker.current()) is not None and t.name != heir and t.term > term_before + 1,
                  ctx.failover_timeout_s, "a leader key after the second kill")
        ctx.progress(f"round {number}: {ctx.tracker.current().name} took the leader key "
                     f"{time.monotonic() - fault_at:.3f} s after the second kill")
        rto_s, third = wait_for(lambda: checker.rto(work.snapshot(), fault_at, heir), ctx.failover_timeout_s,
                                 "a write acknowledged by a primary after the second kill")
    finally:
        time.sleep(0.3)
        work.stop()
    ctx.progress(f"round {number}: {third} acknowledged the first write {rto_s:.3f} s after the second kill; "
                 f"restarting {heir}")
    restart_at = time.monotonic()
    ctx.cluster.start(heir)
    rejoin_s = max(wait_rejoined(ctx, name, third) for name in (first, heir) if name != third) - restart_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: both rejoined after {rejoin_s:.3f} s; {len(t.acks)} acknowledged writes, "
                 f"{t.lost} missing on {third}")
    return result(ctx, work, t, number, "double-kill", f"{first}+{heir}", third, rto_s, rejoin_s, term_before)


SCENARIOS["double-kill"] = double_kill_round
