"""``partition-primary``: the primary cut off from etcd and from the
standbys while its clients still reach it (``partition.py``: cgroup v2 +
iptables on loopback, always removed). Registered in ``SCENARIOS`` on import.
"""
from __future__ import annotations

import time

from walrus_ha.tools.drill import checker, partition
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.scenarios import (
    SCENARIOS,
    DrillContext,
    RoundFailed,
    cause,
    mark,
    result,
    stale_backend,
    start_round,
    tally_with_stale,
    traits,
    wait_for,
    wait_rejoined,
)
from walrus_ha.tools.drill.target import Action
from walrus_ha.tools.drill.workload import StaleWriter


def partition_primary_round(ctx: DrillContext, number: int) -> RoundResult:
    """Cut the primary's process tree from etcd and the standbys' trees from
    the primary's data port, for longer than ttl; a client keeps writing to
    the old primary all along. The old primary must stop acknowledging before
    a new one is elected (no write acknowledged by two primaries), and rejoin
    after the partition heals. RTO = cut -> first write acknowledged by a new
    primary; rejoin = heal -> the old primary streams as a standby."""
    old, term_before, work = start_round(ctx, number, "partition-primary")
    ttl = ctx.cluster.ttl
    stale = StaleWriter(stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    standbys = [n for n in ctx.cluster.node_names() if n != old]
    ctx.progress(f"round {number}: primary is {old} (term {term_before}); cutting it from etcd and from "
                 f"{', '.join(standbys)}")
    left: list[str] = []
    try:
        try:
            fault_at = cause(ctx, f"partition {old}", ctx.cluster.isolate_node, old)
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                  ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))   # longer than ttl in any case
        finally:
            left = ctx.cluster.heal_node(old)
            heal_at = mark(ctx, f"heal {old}")
        if left:
            raise RoundFailed(f"the partition was not fully removed: {'; '.join(left)}")
        ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after the cut; "
                     f"healed after {heal_at - fault_at:.1f} s")
        rejoin_s = wait_rejoined(ctx, old, new) - heal_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
    t, dual = tally_with_stale(ctx, work, stale, fault_at, old, new)
    ctx.progress(f"round {number}: {old} streams again {rejoin_s:.3f} s after the heal; {len(dual)} writes "
                 f"acknowledged by two primaries; {t.lost} acknowledged writes missing")
    return result(ctx, work, t, number, "partition-primary", old, new, rto_s, rejoin_s, term_before,
                  dual_primary_acks=len(dual), extra={"partitioned_s": round(heal_at - fault_at, 3)})


SCENARIOS["partition-primary"] = traits(unavailable=partition.problem, actions=(Action.ISOLATE_NODE, Action.HEAL_NODE))(
    partition_primary_round)
