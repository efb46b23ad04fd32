"""Drill scenarios around the primary rather than of it: a standby killed,
the active orchestrator killed during a failover, and a planned switchover
under load. Registered in ``scenarios.SCENARIOS`` on import (``cli.py``).

Each is one round on a healthy cluster with the workload writing, like the
scenarios in ``scenarios.py``, whose helpers they use.
"""
from __future__ import annotations

import time

from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import cluster_pb2
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
    wait_rejoined,
)
from walrus_ha.tools.drill.target import Action

# Acks by the primary after the fault that show writes flow again.
RESUMED_ACKS = 20
# kill-orchestrator: seconds between killing the primary and killing the
# active orchestrator, cycled over the rounds (before, during, after its decision).
ORCH_KILL_DELAYS = (0.0, 0.15, 0.4)


def _victim_standby(ctx: DrillContext, leader: str) -> str:
    """In sync mode a member of the published synchronous set, else any standby."""
    members = ctx.cluster.client().active_members()
    names = sorted(n for n in ctx.cluster.node_names() if n != leader)
    if ctx.cluster.sync and members is not None:
        in_set = sorted(m.name for m in members.members if m.in_sync_set and m.name != leader)
        if in_set:
            return in_set[0]
    return names[0]


def kill_standby_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL a standby (the synchronous one in sync mode), restart it. RTO =
    the longest stretch without an acknowledged write from the kill until
    writes flow again (the primary must not stall for good waiting on it)."""
    leader, term_before, work = start_round(ctx, number, "kill-standby")
    victim = _victim_standby(ctx, leader)
    ctx.progress(f"round {number}: primary is {leader}; SIGKILL standby {victim}")
    fault_at = cause(ctx, f"SIGKILL {victim}", ctx.cluster.kill_node, victim)
    try:
        resumed_at = wait_for(lambda: checker.nth_ack_after(work.snapshot(), fault_at, RESUMED_ACKS),
                              ctx.failover_timeout_s, f"{RESUMED_ACKS} writes acknowledged after the kill")
    finally:
        time.sleep(0.3)
        work.stop()
    stall = checker.write_gap(work.snapshot(), fault_at, resumed_at)
    restart_at = mark(ctx, f"restart {victim}")
    ctx.cluster.start_node(victim)
    rejoin_s = wait_rejoined(ctx, victim, leader) - restart_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: longest write stall {stall:.3f} s; {victim} streams again after "
                 f"{rejoin_s:.3f} s; {t.lost} of {len(t.acks)} acknowledged writes missing")
    return result(ctx, work, t, number, "kill-standby", victim, leader, stall, rejoin_s, term_before,
                  receipt=False, extra={"victim": victim, "write_stall_s": round(stall, 4)})


def _active_orchestrator(ctx: DrillContext) -> str:
    names = dict(zip(ctx.cluster.orchestrator_addresses(), ctx.cluster.orchestrator_names()))
    replies = ctx.cluster.client().call_each("ListMembers", cluster_pb2.ListMembersRequest())
    active = [names[a] for a, r in replies.items()
              if isinstance(r, cluster_pb2.ListMembersReply) and r.state != "spare"]
    if len(active) != 1:
        raise RoundFailed(f"expected one active orchestrator, found {active or 'none'}")
    return active[0]


def kill_orchestrator_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL the primary, then the active orchestrator a moment later
    (``ORCH_KILL_DELAYS``, by round): the spare must take over and finish the
    failover. RTO = primary kill -> first write acknowledged by a new primary.
    Both are restarted; the old primary must rejoin."""
    old, term_before, work = start_round(ctx, number, "kill-orchestrator")
    orch = _active_orchestrator(ctx)
    delay = ORCH_KILL_DELAYS[(number - 1) % len(ORCH_KILL_DELAYS)]
    ctx.progress(f"round {number}: primary is {old}, active orchestrator {orch}; SIGKILL {old}, "
                 f"then {orch} {delay:g} s later")
    fault_at = cause(ctx, f"SIGKILL {old}", ctx.cluster.kill_node, old)
    try:
        time.sleep(delay)
        mark(ctx, f"SIGKILL {orch} (active orchestrator)")
        ctx.cluster.kill_orchestrator(orch)
        ttl = ctx.cluster.ttl
        rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                              ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
    finally:
        time.sleep(0.3)
        work.stop()
    ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the kill; "
                 f"restarting {orch} and {old}")
    restart_at = mark(ctx, f"restart {orch} and {old}")
    ctx.cluster.start_orchestrator(orch)
    ctx.cluster.start_node(old)
    rejoin_s = wait_rejoined(ctx, old, new) - restart_at
    t = tally(ctx, work.snapshot())
    return result(ctx, work, t, number, "kill-orchestrator", old, new, rto_s, rejoin_s, term_before,
                  extra={"orchestrator": orch, "orchestrator_kill_delay_s": delay})


def switchover_round(ctx: DrillContext, number: int) -> RoundResult:
    """A planned switchover under load (``Cluster.Switchover`` to the best
    standby). RTO = the longest stretch without an acknowledged write from the
    request until the new primary acknowledged ``RESUMED_ACKS`` writes: the
    write unavailability a planned switchover costs."""
    old, term_before, work = start_round(ctx, number, "switchover")
    client = ctx.cluster.client()
    asked_at = mark(ctx, "switchover requested")
    try:
        try:
            reply = client.switchover(expected_leader=old)
        except WalrusError as exc:
            raise RoundFailed(f"switchover refused: {exc}") from None
        if not reply.accepted:
            raise RoundFailed(f"switchover refused: {reply.detail}")

        def new_leader_writing() -> tuple[str, float] | None:
            lead = ctx.tracker.current()
            if lead is None or lead.name == old:
                return None
            at = checker.nth_ack_after(work.snapshot(), asked_at, RESUMED_ACKS, node=lead.name)
            return (lead.name, at) if at is not None else None
        new, resumed_at = wait_for(new_leader_writing, ctx.failover_timeout_s,
                                   f"{RESUMED_ACKS} writes acknowledged by a new primary")
    finally:
        time.sleep(0.3)
        work.stop()
    gap = checker.write_gap(work.snapshot(), asked_at, resumed_at)
    rejoin_s = wait_rejoined(ctx, old, new) - asked_at
    t = tally(ctx, work.snapshot())
    ctx.progress(f"round {number}: {old} -> {new}; longest write gap {gap:.3f} s; {old} streams again "
                 f"{rejoin_s:.3f} s after the request; {t.lost} of {len(t.acks)} acknowledged writes missing")
    return result(ctx, work, t, number, "switchover", old, new, gap, rejoin_s, term_before,
                  extra={"write_unavailable_s": round(gap, 4)})


SCENARIOS["kill-standby"] = traits(actions=(Action.KILL_NODE, Action.START_NODE))(kill_standby_round)
SCENARIOS["kill-orchestrator"] = traits(actions=(Action.KILL_NODE, Action.START_NODE, Action.KILL_ORCHESTRATOR,
                                                 Action.START_ORCHESTRATOR))(kill_orchestrator_round)
SCENARIOS["switchover"] = switchover_round
