"""``walrus drill campaign``: every fault in turn, one verdict per fault. Pure.

This module holds the campaign's targets and turns each fault's drill
document (``report.document``) into one ``faults`` entry; ``cli.py`` runs
the rounds. The JSON document::

    {"faults": [{"fault", "rounds", "rto_median_s", "rto_p95_s", "rto_max_s",
                 "lost_acked_writes", "split_brain_events", "rejoin_median_s", "rejoin_max_s",
                 "receipt", "target", "problems", "passed", "applicable", "note"}],
     "summary": {"faults", "faults_passed", "rounds_total",
                 "lost_acked_writes_total", "split_brain_total", "passed", "cleanup"},
     "drills": {fault: drill document}, "config": {...}}

A fault's ``note`` lists what its rounds reported without failing (e.g. a
slow rejoin of a killed node), or why it was not applicable.
"""
from __future__ import annotations

from collections.abc import Callable

from walrus_ha.tools.drill.report import problems

# The order a campaign runs the faults in: the cheap, common ones first.
ORDER = ("kill-primary", "kill-standby", "kill-engine", "switchover", "kill-orchestrator", "freeze-primary",
         "freeze-tree", "partition-primary", "double-kill", "etcd-member-loss", "etcd-outage", "etcd-wipe",
         "corrupt-wal", "disk-full")

# fault -> (engine, ttl) -> (RTO median target in seconds or None, its text).
# From issue 12's targets; a fault without a stated target is judged on
# safety only (no loss in sync mode, no split brain, no failed round).
TARGETS: dict[str, Callable[[str, float], tuple[float | None, str]]] = {
    "kill-primary": lambda engine, ttl: ((1.0, "RTO median < 1 s") if engine == "embedded"
                                         else (3.0, "RTO median < 3 s")),
    "kill-engine": lambda engine, ttl: (3.0, "RTO median < 3 s"),
    "freeze-primary": lambda engine, ttl: (ttl + 1.0, f"RTO median <= ttl + 1 s ({ttl + 1.0:g} s)"),
    "freeze-tree": lambda engine, ttl: (ttl + 1.0, f"RTO median <= ttl + 1 s ({ttl + 1.0:g} s)"),
    "double-kill": lambda engine, ttl: (None, "safety only"),
    "partition-primary": lambda engine, ttl: (ttl + 1.0, f"RTO median <= ttl + 1 s ({ttl + 1.0:g} s)"),
    "etcd-wipe": lambda engine, ttl: (10.0, "writable within 10 s of etcd coming back empty"),
    "kill-orchestrator": lambda engine, ttl: (ttl + 1.0, f"RTO median <= ttl + 1 s ({ttl + 1.0:g} s)"),
    "switchover": lambda engine, ttl: ((0.5, "write gap median < 0.5 s") if engine == "embedded"
                                       else (2.0, "write gap median < 2 s")),
    "kill-standby": lambda engine, ttl: (None, "safety only; writes must resume"),
    "disk-full": lambda engine, ttl: (None, "safety only; replaced after primary_write_failure_timeout"),
    "corrupt-wal": lambda engine, ttl: (None, "detected, never replayed, nothing missing on the standby"),
    "etcd-member-loss": lambda engine, ttl: (1.0, "no write interruption over 1 s (median)"),
    "etcd-outage": lambda engine, ttl: (3.0, "writes back within 3 s after etcd returns (median)"),
}


def _receipt(summary: dict) -> str:
    outside = summary.get("rounds_lost_outside_receipt", 0)
    unknown = summary.get("rounds_lost_without_exact_receipt", 0)
    if not summary.get("lost_acked_writes_total"):
        return "nothing lost"
    return f"{outside} rounds lost more than the receipt, {unknown} without an exact receipt"


def fault_entry(fault: str, drill: dict, engine: str, sync: bool, ttl: float) -> dict:
    """The ``faults`` entry of one fault's drill document."""
    s = drill["summary"]
    limit, text = TARGETS.get(fault, lambda e, t: (None, "safety only"))(engine, ttl)
    found = problems(s, sync)
    median = s.get("rto_median_s")
    if limit is not None and (median is None or median > limit):
        found.append(f"RTO median {median} s misses the target ({text})")
    return {"fault": fault, "applicable": True, "rounds": s["rounds"], "rto_median_s": median,
            "rto_p95_s": s.get("rto_p95_s"), "rto_max_s": s.get("rto_max_s"),
            "lost_acked_writes": s["lost_acked_writes_total"], "split_brain_events": s.get("split_brain_total", 0),
            "rejoin_median_s": s.get("rejoin_median_s"), "rejoin_max_s": s.get("rejoin_max_s"),
            "receipt": _receipt(s), "target": text, "problems": found, "passed": not found,
            "note": "; ".join(s.get("notes", ()))}


def not_applicable(fault: str, why: str) -> dict:
    return {"fault": fault, "applicable": False, "rounds": 0, "rto_median_s": None, "rto_p95_s": None,
            "rto_max_s": None, "lost_acked_writes": 0, "split_brain_events": 0, "rejoin_median_s": None,
            "rejoin_max_s": None, "receipt": "-", "target": "-", "problems": [], "passed": None, "note": why}


def document(faults: list[dict], drills: dict[str, dict], config: dict, cleanup: str,
             interrupted: bool = False) -> dict:
    """The campaign report; an ``interrupted`` campaign holds the rounds that
    finished and never passes."""
    ran = [f for f in faults if f["applicable"]]
    summary = {"faults": len(ran), "faults_passed": sum(1 for f in ran if f["passed"]),
               "rounds_total": sum(f["rounds"] for f in ran),
               "lost_acked_writes_total": sum(f["lost_acked_writes"] for f in ran),
               "split_brain_total": sum(f["split_brain_events"] for f in ran),
               "passed": bool(ran) and not interrupted and all(f["passed"] for f in ran),
               "interrupted": interrupted, "cleanup": cleanup}
    return {"faults": faults, "summary": summary, "drills": drills, "config": config}


def progress_bar(done: int, total: int, width: int = 24) -> str:
    """``[#########---------------]  9/18 rounds``"""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} rounds"
