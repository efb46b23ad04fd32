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
from dataclasses import dataclass, field
from typing import Callable

from walrus.drill import checker
from walrus.drill.checker import Ack
from walrus.drill.report import RoundResult
from walrus.drill.workload import BackendFactory, EmbeddedBackend, LeaderTracker, StaleWriter, Workload
from walrus.errors import WalrusError
from walrus.localcluster.cluster import LocalCluster

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


def _wait_for(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.005):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RoundFailed(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(poll_s)


def _wait_rejoined(ctx: DrillContext, name: str, new_primary: str | None) -> float:
    """Monotonic time at which ``name`` streams as a standby again."""
    def ok() -> bool:
        m = [m for m in ctx.cluster.member_health() if m.name == name][0]
        return m.reachable and m.role == "standby" and m.streaming and (
            not new_primary or not m.upstream or m.upstream == new_primary)
    _wait_for(ok, ctx.rejoin_timeout_s, f"{name} to stream as a standby", poll_s=0.02)
    return time.monotonic()


def _history_receipt(ctx: DrillContext, term_after: int) -> dict:
    try:
        records = ctx.cluster.client().history(5).records
    except WalrusError:
        return {}
    for r in records:
        if r.term == term_after or (term_after == 0 and r.kind == "failover"):
            return {"term": r.term, "kind": r.kind, "old_leader": r.old_leader, "new_leader": r.new_leader,
                    "last_primary_lsn": r.last_primary_lsn, "promoted_lsn": r.promoted_lsn,
                    "bytes_possibly_lost": r.bytes_possibly_lost}
    return {}


def _read_back(ctx: DrillContext, acks: list[Ack]) -> tuple[int, list[str], dict]:
    """(number lost, a sample of lost keys, lost counts by acknowledging node)."""
    leader = ctx.cluster.client().get_leader()
    backend = ctx.factory(leader.data_address)
    try:
        present = backend.existing([a.key for a in acks])
    finally:
        backend.close()
    lost = checker.lost_writes(acks, present)
    return len(lost), lost[:10], checker.lost_by_node(acks, lost)


def _start_round(ctx: DrillContext, number: int, scenario: str) -> tuple[str, int, Workload]:
    verdict = ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    old = verdict.leader
    ctx.notes["old_primary"] = old     # for the report if the round fails
    term_before = ctx.cluster.client().get_leader().term
    work = Workload(ctx.tracker, ctx.factory, prefix=f"{scenario[:1]}{int(time.time())}r{number}",
                    writers=ctx.writers).start()
    _wait_for(lambda: len(work.snapshot()) >= 5, 15.0, "the workload's first acknowledged writes", 0.02)
    time.sleep(ctx.warmup_s)
    return old, term_before, work


def kill_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One kill-primary round (see the module docstring)."""
    old, term_before, work = _start_round(ctx, number, "kill-primary")
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); {len(work.snapshot())} writes "
                 f"acknowledged; SIGKILL {old}'s agent")
    fault_at = time.monotonic()
    ctx.cluster.kill(old)
    try:
        found = _wait_for(lambda: checker.rto(work.snapshot(), fault_at, old), ctx.failover_timeout_s,
                          "a write acknowledged by a new primary")
    finally:
        time.sleep(0.3)
        work.stop()
    rto_s, new = found
    ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the kill; "
                 f"restarting {old}")
    restart_at = time.monotonic()
    ctx.cluster.start(old)
    rejoin_s = _wait_rejoined(ctx, old, new) - restart_at
    ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    acks = work.snapshot()
    lost, sample, lost_by = _read_back(ctx, acks)
    term_after = ctx.cluster.client().get_leader().term
    ctx.progress(f"round {number}: {old} streams again after {rejoin_s:.3f} s; {len(acks)} acknowledged "
                 f"writes, {lost} missing on {new}")
    return RoundResult(round=number, scenario="kill-primary", old_primary=old, new_primary=new, rto_s=rto_s,
                       rejoin_s=rejoin_s, acked_writes=len(acks), lost_acked_writes=lost,
                       failed_writes=work.failures, term_before=term_before, term_after=term_after,
                       acked_by=checker.acked_by(acks), rpo_receipt=_history_receipt(ctx, term_after),
                       lost_keys_sample=tuple(sample), lost_by_node=lost_by)


def freeze_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """One freeze-primary round (see the module docstring)."""
    old, term_before, work = _start_round(ctx, number, "freeze-primary")
    ttl = ctx.cluster.spec.timings.ttl
    stale = StaleWriter(_stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); SIGSTOP {old}'s agent")
    fault_at = time.monotonic()
    ctx.cluster.signal(old, signal.SIGSTOP)
    try:
        try:
            rto_s, new = _wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                   ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
        finally:
            # Stay frozen for longer than ttl in any case, then thaw.
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))
            thaw_at = time.monotonic()
            ctx.cluster.signal(old, signal.SIGCONT)
        ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the freeze; "
                     f"{old} thawed after {thaw_at - fault_at:.1f} s")
        rejoin_s = _wait_rejoined(ctx, old, new) - thaw_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
    ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    acks = work.snapshot()
    all_acks = acks + [a for a in stale.acks if a.at < fault_at]
    dual = checker.dual_primary_acks(acks + stale.acks, old, new)
    lost, sample, lost_by = _read_back(ctx, all_acks)
    term_after = ctx.cluster.client().get_leader().term
    ctx.progress(f"round {number}: {old} streams again {rejoin_s:.3f} s after thawing; "
                 f"{len(dual)} writes acknowledged by two primaries; {lost} acknowledged writes missing")
    return RoundResult(round=number, scenario="freeze-primary", old_primary=old, new_primary=new, rto_s=rto_s,
                       rejoin_s=rejoin_s, acked_writes=len(all_acks), lost_acked_writes=lost,
                       failed_writes=work.failures, term_before=term_before, term_after=term_after,
                       acked_by=checker.acked_by(all_acks), rpo_receipt=_history_receipt(ctx, term_after),
                       dual_primary_acks=len(dual), frozen_s=thaw_at - fault_at,
                       lost_keys_sample=tuple(sample), lost_by_node=lost_by)


def _stale_backend(ctx: DrillContext, name: str):
    address = ctx.cluster.data_address(name)
    if ctx.cluster.spec.engine.value == "embedded":
        # A long timeout: the request stuck in the frozen process is answered after the thaw.
        return EmbeddedBackend(address, ctx.cluster.spec.sync, timeout_s=ctx.cluster.spec.timings.ttl * 4)
    return ctx.factory(address)


SCENARIOS: dict[str, Callable[[DrillContext, int], RoundResult]] = {
    "kill-primary": kill_primary_round,
    "freeze-primary": freeze_primary_round,
}


def double_kill_round(ctx: DrillContext, number: int) -> RoundResult:
    """``double-kill``: SIGKILL the primary, then SIGKILL the new primary the
    moment its leader key appears (before it has standbys or, in synchronous
    mode, a set of its own), and restart the first one at once, as a
    supervisor would (in synchronous mode the third node needs a standby to
    acknowledge anything). RTO = second kill -> first write acknowledged by
    the next primary (the third node, or the restarted first one); the
    second one is restarted after that; the others must rejoin, and every
    acknowledged write must be on the last primary."""
    first, term_before, work = _start_round(ctx, number, "double-kill")
    ctx.progress(f"round {number}: primary is {first} (term {term_before}); SIGKILL {first}'s agent")
    ctx.cluster.kill(first)
    try:
        heir = _wait_for(lambda: (t := ctx.tracker.current()) is not None and t.name != first
                         and t.term > term_before and t.name, ctx.failover_timeout_s, "a new leader key")
        fault_at = time.monotonic()
        ctx.cluster.kill(heir)
        ctx.notes["old_primary"] = f"{first}+{heir}"
        ctx.cluster.start(first)
        ctx.progress(f"round {number}: {heir} took the leader key; SIGKILL {heir}'s agent, restart {first}")
        _wait_for(lambda: (t := ctx.tracker.current()) is not None and t.name != heir and t.term > term_before + 1,
                  ctx.failover_timeout_s, "a leader key after the second kill")
        ctx.progress(f"round {number}: {ctx.tracker.current().name} took the leader key "
                     f"{time.monotonic() - fault_at:.3f} s after the second kill")
        rto_s, third = _wait_for(lambda: checker.rto(work.snapshot(), fault_at, heir), ctx.failover_timeout_s,
                                 "a write acknowledged by a primary after the second kill")
    finally:
        time.sleep(0.3)
        work.stop()
    ctx.progress(f"round {number}: {third} acknowledged the first write {rto_s:.3f} s after the second kill; "
                 f"restarting {heir}")
    restart_at = time.monotonic()
    ctx.cluster.start(heir)
    rejoin_s = max(_wait_rejoined(ctx, name, third) for name in (first, heir) if name != third) - restart_at
    ctx.cluster.wait_healthy(ctx.healthy_timeout_s, ctx.progress)
    acks = work.snapshot()
    lost, sample, lost_by = _read_back(ctx, acks)
    term_after = ctx.cluster.client().get_leader().term
    ctx.progress(f"round {number}: both rejoined after {rejoin_s:.3f} s; {len(acks)} acknowledged writes, "
                 f"{lost} missing on {third}")
    return RoundResult(round=number, scenario="double-kill", old_primary=f"{first}+{heir}", new_primary=third,
                       rto_s=rto_s, rejoin_s=rejoin_s, acked_writes=len(acks), lost_acked_writes=lost,
                       failed_writes=work.failures, term_before=term_before, term_after=term_after,
                       acked_by=checker.acked_by(acks), rpo_receipt=_history_receipt(ctx, term_after),
                       lost_keys_sample=tuple(sample), lost_by_node=lost_by)


SCENARIOS["double-kill"] = double_kill_round
