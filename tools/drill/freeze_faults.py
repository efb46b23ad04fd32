"""``freeze-tree``: the primary's whole process tree frozen for longer than
ttl, as ``docker pause`` or a paused VM does (``freeze.py``). Registered in
``SCENARIOS`` on import.
"""
from __future__ import annotations

import time

from walrus_ha.tools.drill import checker
from walrus_ha.tools.drill.checker import Ack
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.scenarios import (
    SCENARIOS,
    DrillContext,
    cause,
    result,
    stale_backend,
    start_round,
    tally,
    traits,
    wait_for,
    wait_rejoined,
)
from walrus_ha.tools.drill.target import Action
from walrus_ha.tools.drill.workload import StaleWriter


class _GiveUpBackend:
    """A backend whose write gives up after ``timeout_s`` (a frozen server
    answers nothing, and PostgreSQL's own timeouts are frozen with it), so the
    workload moves on to the new primary. An abandoned write still counts if
    the old primary acknowledges it after the thaw: it lands in ``late``,
    with the instant it was sent."""

    def __init__(self, factory, address: str, node: str, late: list, timeout_s: float):
        self._factory, self.address, self.node = factory, address, node
        self._late, self._timeout = late, timeout_s
        self._inner = None

    def write(self, key: str, value: str) -> int:
        import threading

        from walrus_ha.tools.drill.workload import WriteFailed
        inner = self._inner = self._inner or self._factory(self.address)
        box: dict = {}
        abandoned = threading.Event()
        sent_at = time.monotonic()

        def run() -> None:
            try:
                box["term"] = inner.write(key, value)
                if abandoned.is_set():
                    self._late.append(Ack(key, time.monotonic(), self.node, box["term"], value, sent=sent_at))
            except Exception as exc:            # WriteFailed or anything: not acknowledged
                box["error"] = exc
            finally:
                box["done"] = True
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
    late: list[Ack] = []
    factory = ctx.factory

    def giving_up(address: str):
        node = ctx.cluster.name_of_data_address(address) or address
        return _GiveUpBackend(factory, address, node, late, 1.0)
    ctx = dataclasses.replace(ctx, factory=giving_up)
    old, term_before, work = start_round(ctx, number, "freeze-tree")
    ttl = ctx.cluster.ttl
    stale = StaleWriter(stale_backend(ctx, old), old, prefix=work.prefix)
    stale.start()
    fault_at = cause(ctx, f"freeze {old}'s process tree", ctx.cluster.freeze_node, old)
    try:
        try:
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                   ctx.failover_timeout_s + ttl, "a write acknowledged by a new primary")
        finally:
            time.sleep(max(0.0, fault_at + ttl + 1.0 - time.monotonic()))
            thaw_at = time.monotonic()
            ctx.cluster.thaw_node(old)
        rejoin_s = wait_rejoined(ctx, old, new) - thaw_at
    finally:
        time.sleep(0.3)
        work.stop()
        stale.stop()
    all_acks = work.snapshot() + stale.acks + late
    t = tally(ctx, all_acks)
    dual = checker.dual_primary_acks(all_acks, old, new, t.kept)
    excused = checker.late_dual_acks_kept(all_acks, old, new, t.kept)
    after = [a for a in dual if a.sent > fault_at]
    ctx.progress(f"round {number}: {new} first acknowledged {rto_s:.3f} s after the freeze; {old} thawed after "
                 f"{thaw_at - fault_at:.1f} s, streams again {rejoin_s:.3f} s later; old primary acks after the "
                 f"new one's first: {len(dual)} ({len(after)} sent after the freeze; {excused} more were "
                 f"in flight before the takeover and are on the new primary); {t.lost} acked writes lost")
    return result(ctx, work, t, number, "freeze-tree", old, new, rto_s, rejoin_s, term_before,
                   dual_primary_acks=len(dual), frozen_s=thaw_at - fault_at,
                   extra={"sent_after_freeze": len(after), "late_acks": len(late), "late_dual_acks_kept": excused})


SCENARIOS["freeze-tree"] = traits(actions=(Action.FREEZE_NODE, Action.THAW_NODE))(freeze_tree_round)


