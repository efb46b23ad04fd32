"""etcd faults besides the wipe (``scenarios.etcd_wipe_round``): one member
of a multi-member etcd lost, and the whole etcd gone for longer than ttl.
Registered in ``SCENARIOS`` on import; ``needs_etcd_members`` tells the CLI
which cluster to start (``walrus cluster up --etcd-members 3``).
"""
from __future__ import annotations

import time

from walrus_ha.tools.drill import checker
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.scenarios import (
    SCENARIOS,
    DrillContext,
    RoundFailed,
    mark,
    result,
    start_round,
    tally,
    traits,
    wait_for,
)

# Acks that show writes flow again after etcd came back.
RESUMED_ACKS = 20


def etcd_member_loss_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL one etcd member (a different one each round), keep writing for
    ttl + 1.5 s, restart it. The quorum survives, so writes must go on: RTO =
    the longest stretch without an acknowledged write in that window (agents
    whose endpoint died must move to another member before their lease
    deadline)."""
    members = ctx.cluster.etcd_names()
    if len(members) < 3:
        raise RoundFailed("etcd-member-loss needs an etcd of 3 or more members (--etcd-members 3)")
    leader, term_before, work = start_round(ctx, number, "etcd-member-loss")
    victim = members[(number - 1) % len(members)]
    window = ctx.cluster.spec.timings.ttl + 1.5
    ctx.progress(f"round {number}: primary is {leader}; SIGKILL etcd member {victim} for {window:g} s")
    fault_at = mark(ctx, f"SIGKILL {victim}")
    ctx.cluster.kill(victim)
    try:
        time.sleep(window)
    finally:
        mark(ctx, f"restart {victim}")
        ctx.cluster.start(victim)
        time.sleep(0.3)
        work.stop()
    ctx.cluster.wait_etcd(30.0)
    gap = checker.write_gap(work.snapshot(), fault_at, fault_at + window)
    t = tally(ctx, work.snapshot())
    new = ctx.cluster.client().get_leader().name
    ctx.progress(f"round {number}: longest write gap {gap:.3f} s with {victim} down; leader {new} "
                 f"(term {t.term_after}); {t.lost} of {len(t.acks)} acknowledged writes missing")
    return result(ctx, work, t, number, "etcd-member-loss", leader, new, gap, None, term_before, receipt=False,
                  extra={"etcd_member": victim, "window_s": window})


def etcd_outage_round(ctx: DrillContext, number: int) -> RoundResult:
    """Every etcd member killed for ttl + 2 s, then restarted (data kept).
    The primary must stop acknowledging within ttl of losing etcd (counted:
    ``acks_after_ttl``, must be 0) and the cluster must be writable again
    soon after etcd returns: RTO = etcd answering again -> RESUMED_ACKS
    writes acknowledged."""
    leader, term_before, work = start_round(ctx, number, "etcd-outage")
    ttl = ctx.cluster.spec.timings.ttl
    members = ctx.cluster.etcd_names()
    ctx.progress(f"round {number}: primary is {leader}; SIGKILL all {len(members)} etcd member(s) for "
                 f"{ttl + 2:g} s")
    down_at = mark(ctx, "etcd down")
    try:
        for m in members:
            ctx.cluster.kill(m)
        time.sleep(ttl + 2.0)
    finally:
        for m in members:
            ctx.cluster.start(m)
    ctx.cluster.wait_etcd(30.0)
    back_at = mark(ctx, "etcd back")
    try:
        resumed = wait_for(lambda: _nth_ack_after(work, back_at), ctx.failover_timeout_s + ttl,
                           f"{RESUMED_ACKS} writes acknowledged after etcd came back")
    finally:
        time.sleep(0.3)
        work.stop()
    acks = work.snapshot()
    late = [a for a in acks if down_at + ttl < a.at < back_at]
    first = min(a.at for a in acks if a.at > back_at)
    t = tally(ctx, acks)
    new = ctx.cluster.client().get_leader().name
    ctx.progress(f"round {number}: writes back {first - back_at:.3f} s after etcd answered ({RESUMED_ACKS} by "
                 f"{resumed - back_at:.3f} s); {len(late)} acknowledged later than ttl into the outage; "
                 f"leader {new}; {t.lost} of {len(t.acks)} acknowledged writes missing")
    if late:
        raise RoundFailed(f"{len(late)} writes were acknowledged more than ttl after etcd went away")
    return result(ctx, work, t, number, "etcd-outage", leader, new, first - back_at, None, term_before,
                  extra={"outage_s": round(back_at - down_at, 3), "acks_after_ttl": len(late)})


def _nth_ack_after(work, after: float) -> float | None:
    times = sorted(a.at for a in work.snapshot() if a.at > after)
    return times[RESUMED_ACKS - 1] if len(times) >= RESUMED_ACKS else None


SCENARIOS["etcd-member-loss"] = traits(needs_etcd_members=3)(etcd_member_loss_round)
SCENARIOS["etcd-outage"] = etcd_outage_round
