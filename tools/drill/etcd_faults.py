"""etcd faults: etcd restarted empty (``etcd-wipe``), one member of a
multi-member etcd lost, and the whole etcd gone for longer than ttl.
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
    cause,
    mark,
    result,
    start_round,
    tally,
    traits,
    wait_for,
)
from walrus_ha.tools.drill.target import Action
from walrus_ha.tools.drill.workload import Workload

# Acks that show writes flow again after etcd came back.
RESUMED_ACKS = 20


def _wipe_etcd(ctx: DrillContext) -> float:
    """Wipe etcd (``DrillTarget.wipe_etcd``: every member stopped, its data
    removed, started empty on the same address); returns the monotonic time
    etcd answers again."""
    ctx.cluster.wipe_etcd()
    ctx.cluster.wait_etcd(15.0 * max(1, len(ctx.cluster.etcd_names())))
    return time.monotonic()


def _first_ack_above(ctx: DrillContext, work: Workload, after: float, term: int) -> tuple[float, str] | None:
    """(seconds from ``after`` to the first write acknowledged at a term above
    ``term``, its node). The embedded engine answers with its term. A
    PostgreSQL ack carries its timeline, which a leader keeping its place
    through a re-seed does not change: there, an ack counts once the leader
    stream named a term above ``term``."""
    by_term = ctx.cluster.engine == "embedded"
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
    window = ctx.cluster.ttl + 1.5
    ctx.progress(f"round {number}: primary is {leader}; SIGKILL etcd member {victim} for {window:g} s")
    fault_at = cause(ctx, f"SIGKILL {victim}", ctx.cluster.kill_etcd, victim)
    try:
        time.sleep(window)
    finally:
        mark(ctx, f"restart {victim}")
        ctx.cluster.start_etcd(victim)
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
    ``acks_after_ttl``, acks between ttl after the last member died and the
    first restart, must be 0) and the cluster must be writable again
    soon after etcd returns: RTO = etcd answering again -> RESUMED_ACKS
    writes acknowledged."""
    leader, term_before, work = start_round(ctx, number, "etcd-outage")
    ttl = ctx.cluster.ttl
    members = ctx.cluster.etcd_names()
    ctx.progress(f"round {number}: primary is {leader}; SIGKILL all {len(members)} etcd member(s) for "
                 f"{ttl + 2:g} s")

    def kill_all() -> None:
        for m in members:
            ctx.cluster.kill_etcd(m)
    try:
        cause(ctx, "etcd down", kill_all)
        # Once every member is down (a hook may take seconds per member; a
        # renewal can reach the last one until then).
        down_at = time.monotonic()
        time.sleep(ttl + 2.0)
    finally:
        # From the first start on, etcd may answer (and writes resume) before
        # wait_etcd sees it, locally too on a loaded host.
        restart_at = mark(ctx, "etcd restarting")
        for m in members:
            ctx.cluster.start_etcd(m)
    ctx.cluster.wait_etcd(30.0)
    back_at = mark(ctx, "etcd back")
    try:
        resumed = wait_for(lambda: checker.nth_ack_after(work.snapshot(), back_at, RESUMED_ACKS),
                           ctx.failover_timeout_s + ttl, f"{RESUMED_ACKS} writes acknowledged after etcd came back")
    finally:
        time.sleep(0.3)
        work.stop()
    acks = work.snapshot()
    late = [a for a in acks if down_at + ttl < a.at < restart_at]
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


SCENARIOS["etcd-wipe"] = traits(actions=(Action.WIPE_ETCD,))(etcd_wipe_round)
SCENARIOS["etcd-member-loss"] = traits(needs_etcd_members=3, actions=(Action.KILL_ETCD, Action.START_ETCD))(
    etcd_member_loss_round)
SCENARIOS["etcd-outage"] = traits(actions=(Action.KILL_ETCD, Action.START_ETCD))(etcd_outage_round)
