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

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill import checker, timeline
from walrus_ha.tools.drill.checker import Ack
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.target import Action, DrillTarget
from walrus_ha.tools.drill.workload import BackendFactory, EmbeddedBackend, LeaderTracker, StaleWriter, Workload
from walrus_ha.tools.localcluster.cluster import LocalCluster

Progress = Callable[[str], None]


class RoundFailed(WalrusError):
    """A round could not complete (no new primary, no rejoin, cluster unhealthy)."""


@dataclass
class DrillContext:
    cluster: DrillTarget        # the target: ``local_target.LocalTarget`` or ``hook_target.HookTarget``
    tracker: LeaderTracker
    factory: BackendFactory
    progress: Progress
    writers: int = 2
    warmup_s: float = 1.0
    failover_timeout_s: float = 30.0
    rejoin_timeout_s: float = 60.0
    healthy_timeout_s: float = 60.0
    notes: dict = field(default_factory=dict)

    def local(self) -> LocalCluster:
        """The ``LocalCluster`` of a local target, for the faults that need
        this machine's files (``local_only``); RoundFailed on another target."""
        cluster = getattr(self.cluster, "cluster", None)
        if not isinstance(cluster, LocalCluster):
            raise RoundFailed("this fault needs a local cluster (its files on this machine)")
        return cluster


def traits(**values: object) -> Callable[[Callable], Callable]:
    """Declare what the CLI needs to know of a scenario on its function:
    ``engines`` (where it applies), ``unavailable`` (a callable saying why it
    cannot run on this host, or None), ``needs_etcd_members``, ``own_cluster``
    (something to mount before its cluster starts), ``actions`` (the
    ``target.Action``s it needs; a remote target without their hooks says
    "not applicable"), ``local_only`` (why it needs this machine's files)."""
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


def cause(ctx: DrillContext, what: str, verb: Callable[..., object], *args: object) -> float:
    """Run the fault ``verb(*args)``, noted as ``mark`` does; returns the
    instant before it, which the RTO counts from. On a remote target the
    fault lands somewhere while its hook runs (seconds, for a slow command):
    that run time is noted and reported as ``extra.fault_hook_s``, the RTO's
    uncertainty (the RTO is an upper bound by at most that much)."""
    at = mark(ctx, what)
    verb(*args)
    if ctx.cluster.kind != "local":
        ctx.notes["fault_hook_s"] = round(time.monotonic() - at, 3)
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
    kept: dict = field(default_factory=dict)   # key -> value the leader holds, of the acknowledged keys


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
                  len(wrong), gaps, held)


def tally_with_stale(ctx: DrillContext, work: Workload, stale: StaleWriter, fault_at: float, old: str,
                     new: str) -> tuple[_Tally, list[Ack]]:
    """``tally`` for a round in which ``stale`` kept writing to the old
    primary: its acks from before the fault count as writes, and the acks
    of both that the old primary gave after the new one started (two
    primaries at once) are returned."""
    acks = work.snapshot()
    dual = checker.dual_primary_acks(acks + stale.acks, old, new)
    return tally(ctx, acks + [a for a in stale.acks if a.at < fault_at]), dual


def result(ctx: DrillContext, work: Workload, t: _Tally, number: int, scenario: str, old: str, new: str | None,
            rto_s: float, rejoin_s: float | None, term_before: int, receipt: bool = True, **fields) -> RoundResult:
    """The round's ``RoundResult`` (``fields``: the scenario's own ones); with
    ``receipt`` the history record of the term the round ended in."""
    brains = checker.split_brain(t.acks, t.kept)
    if "fault_hook_s" in ctx.notes:
        fields["extra"] = {**fields.get("extra", {}), "fault_hook_s": ctx.notes["fault_hook_s"]}
    late = checker.late_acks_kept(t.acks, t.kept)
    if late:       # overlapping the takeover and kept by the new primary: reported, not split brain
        fields["extra"] = {**fields.get("extra", {}), "late_acks_kept": len(late),
                           "late_acks_kept_sample": [e.describe() for e in late[:3]]}
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
    ctx.notes.pop("fault_hook_s", None)
    term_before = ctx.cluster.client().get_leader().term
    work = Workload(ctx.tracker, ctx.factory, prefix=f"{scenario[:1]}{int(time.time())}r{number}",
                    writers=ctx.writers, sync=ctx.cluster.sync).start()
    wait_for(lambda: len(work.snapshot()) >= 5, 15.0, "the workload's first acknowledged writes", 0.02)
    time.sleep(ctx.warmup_s)
    return old, term_before, work


def kill_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One kill-primary round (see the module docstring)."""
    old, term_before, work = start_round(ctx, number, "kill-primary")
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); {len(work.snapshot())} writes "
                 f"acknowledged; SIGKILL {old}'s agent")
    fault_at = cause(ctx, f"SIGKILL {old}", ctx.cluster.kill_node, old)
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
    ctx.cluster.start_node(old)
    rejoin_s = wait_rejoined(ctx, old, new) - restart_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: {old} streams again after {rejoin_s:.3f} s; {len(t.acks)} acknowledged "
                 f"writes, {t.lost} missing on {new}")
    return result(ctx, work, t, number, "kill-primary", old, new, rto_s, rejoin_s, term_before)


def freeze_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One freeze-primary round (see the module docstring)."""
    old, term_before, work = start_round(ctx, number, "freeze-primary")
    ttl = ctx.cluster.ttl
    stale = StaleWriter(stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); SIGSTOP {old}'s agent")
    fault_at = cause(ctx, f"SIGSTOP {old}'s agent", ctx.cluster.freeze_agent, old)
    try:
        try:
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                   ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
        finally:
            # Stay frozen for longer than ttl in any case, then thaw.
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))
            thaw_at = mark(ctx, f"thaw {old}")
            ctx.cluster.thaw_agent(old)
        ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the freeze; "
                     f"{old} thawed after {thaw_at - fault_at:.1f} s")
        rejoin_s = wait_rejoined(ctx, old, new) - thaw_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
    t, dual = tally_with_stale(ctx, work, stale, fault_at, old, new)
    ctx.progress(f"round {number}: {old} streams again {rejoin_s:.3f} s after thawing; "
                 f"{len(dual)} writes acknowledged by two primaries; {t.lost} acknowledged writes missing")
    return result(ctx, work, t, number, "freeze-primary", old, new, rto_s, rejoin_s, term_before,
                   dual_primary_acks=len(dual), frozen_s=thaw_at - fault_at)


def stale_backend(ctx: DrillContext, name: str):
    address = ctx.cluster.data_address(name)
    if ctx.cluster.engine == "embedded":
        # A long timeout: the request stuck in the frozen process is answered after the thaw.
        return EmbeddedBackend(address, ctx.cluster.sync, timeout_s=ctx.cluster.ttl * 4)
    return ctx.factory(address)


SCENARIOS: dict[str, Callable[[DrillContext, int], RoundResult]] = {
    "kill-primary": traits(actions=(Action.KILL_NODE, Action.START_NODE))(kill_primary_round),
    "freeze-primary": traits(actions=(Action.FREEZE_AGENT, Action.THAW_AGENT))(freeze_primary_round),
}


# -- kill-engine (issue 10 item 1) ------------------------------------------------------

def kill_engine_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL the primary's postmaster only (its agent lives on). RTO = kill ->
    first write acknowledged after a new postmaster (same node) appeared, or by
    another node (a failover). PostgreSQL only: the embedded engine lives in
    the agent's process, so "the engine alone" cannot die. A target that
    cannot see the postmaster (``engine_instance`` None: remote) counts the
    node's own acks from the moment the kill hook returned."""
    old, term_before, work = start_round(ctx, number, "kill-engine")
    before = ctx.cluster.engine_instance(old)
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); SIGKILL its postmaster"
                 f"{' ' + before if before else ''}")
    fault_at = cause(ctx, f"SIGKILL {old}'s postmaster", ctx.cluster.kill_engine, old)
    try:
        restarted = [0.0 if before is not None else time.monotonic()]

        def writable():
            if not restarted[0] and ctx.cluster.engine_instance(old) not in ("", before):
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
SCENARIOS["kill-engine"] = traits(actions=(Action.KILL_ENGINE,))(kill_engine_round)


# -- double-kill (issue 10 item 2) ------------------------------------------------------

# A rejoin slower than this is noted in the round's report (not a failure):
# a killed PostgreSQL node rejoins in about 2 s on a quiet machine.
SLOW_REJOIN_S = 10.0


def _new_leader_key(ctx: DrillContext, exclude: tuple[str, ...], term_above: int) -> str | None:
    """The name in the leader key when it names a node outside ``exclude`` at
    a term above ``term_above``, writable or not yet (its synchronous set may
    still wait for a standby); None otherwise or when the cluster does not answer."""
    try:
        lead = ctx.cluster.client().get_leader()
    except WalrusError:
        return None
    return lead.name if lead.present and lead.name not in exclude and lead.term > term_above else None


def _rejoin_time(ctx: DrillContext, name: str, leader: str, restarted_at: float) -> float | None:
    """Seconds from ``restarted_at`` until ``name`` streams from ``leader``;
    None when it did not within ``rejoin_timeout_s`` (``tally`` then waits
    for a healthy cluster, and fails the round if it does not get one)."""
    try:
        return wait_rejoined(ctx, name, leader) - restarted_at
    except RoundFailed:
        return None


def double_kill_round(ctx: DrillContext, number: int) -> RoundResult:
    """``double-kill``: SIGKILL the primary, then SIGKILL the new primary the
    moment its leader key appears (before it has standbys or, in synchronous
    mode, a set of its own), and restart the first one at once, as a
    supervisor would. Measured from the second kill: ``failover_s`` (a third
    primary holds the leader key) and the RTO (its first acknowledged write).
    In synchronous mode that write needs a standby, i.e. the restarted first
    node's rejoin, so the drill waits ``failover_timeout_s`` for the takeover
    plus ``rejoin_timeout_s`` for the write. The second one is restarted
    after that; both must rejoin (each timed from its own restart), and
    every acknowledged write must be on the last primary. The pass rule is
    ``checker.takeover_verdict``: a slow rejoin is noted, never a failure."""
    first, term_before, work = start_round(ctx, number, "double-kill")
    ctx.progress(f"round {number}: primary is {first} (term {term_before}); SIGKILL {first}'s agent")
    mark(ctx, f"SIGKILL {first}")
    ctx.cluster.kill_node(first)
    try:
        heir = wait_for(lambda: (t := ctx.tracker.current()) is not None and t.name != first
                         and t.term > term_before and t.name, ctx.failover_timeout_s, "a new leader key")
        fault_at = cause(ctx, f"SIGKILL {heir} (new leader)", ctx.cluster.kill_node, heir)
        ctx.notes["old_primary"] = f"{first}+{heir}"
        first_restart_at = mark(ctx, f"restart {first}")
        ctx.cluster.start_node(first)
        ctx.progress(f"round {number}: {heir} took the leader key; SIGKILL {heir}'s agent, restart {first}")
        third = wait_for(lambda: _new_leader_key(ctx, (heir,), term_before + 1), ctx.failover_timeout_s,
                         "a leader key after the second kill", poll_s=0.02)
        failover_s = time.monotonic() - fault_at
        ctx.progress(f"round {number}: {third} took the leader key {failover_s:.3f} s after the second kill")
        budget = ctx.failover_timeout_s + (ctx.rejoin_timeout_s if ctx.cluster.sync else 0.0)
        rto_s, third = wait_for(lambda: checker.rto(work.snapshot(), fault_at, heir),
                                max(0.0, fault_at + budget - time.monotonic()),
                                "a write acknowledged by a primary after the second kill")
    finally:
        time.sleep(0.3)
        work.stop()
    ctx.progress(f"round {number}: {third} acknowledged the first write {rto_s:.3f} s after the second kill; "
                 f"restarting {heir}")
    rejoins: dict[str, float | None] = {}
    if first != third:
        rejoins[first] = _rejoin_time(ctx, first, third, first_restart_at)
    heir_restart_at = mark(ctx, f"restart {heir}")
    ctx.cluster.start_node(heir)
    rejoins[heir] = _rejoin_time(ctx, heir, third, heir_restart_at)
    verdict = checker.takeover_verdict(failover_s, rto_s, rejoins, ctx.failover_timeout_s, SLOW_REJOIN_S)
    t = tally(ctx, work.snapshot())
    took = ", ".join(f"{n} {'-' if s is None else f'{s:.3f} s'}" for n, s in rejoins.items())
    ctx.progress(f"round {number}: rejoined after {took}; "
                 f"{len(t.acks)} acknowledged writes, {t.lost} missing on {third}"
                 + "".join(f"; {n}" for n in verdict.notes))
    return result(ctx, work, t, number, "double-kill", f"{first}+{heir}", third, rto_s,
                  max((s for s in rejoins.values() if s is not None), default=None), term_before,
                  error="; ".join(verdict.problems), notes=verdict.notes,
                  extra={"failover_s": round(failover_s, 4),
                         "rejoin_s": {n: None if s is None else round(s, 4) for n, s in rejoins.items()}})


SCENARIOS["double-kill"] = traits(actions=(Action.KILL_NODE, Action.START_NODE))(double_kill_round)
