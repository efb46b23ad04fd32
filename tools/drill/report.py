"""Drill reports: per-round results, summary statistics, a table and JSON.

Pure: builds plain data from ``RoundResult``s; the CLI prints or writes it.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

from walrus_ha.tools.localcluster.table import format_table


@dataclass(frozen=True)
class RoundResult:
    """One drill round. ``None`` means "not measured" (e.g. the round failed)."""
    round: int
    scenario: str
    old_primary: str
    new_primary: str | None
    rto_s: float | None
    rejoin_s: float | None
    acked_writes: int
    lost_acked_writes: int
    failed_writes: int = 0
    term_before: int = 0
    term_after: int = 0
    acked_by: dict = field(default_factory=dict)
    rpo_receipt: dict = field(default_factory=dict)     # the history record of the failover
    dual_primary_acks: int = 0                          # freeze-primary: acks by two primaries at once
    split_brain: int = 0                                # checker.split_brain events (acks carrying terms)
    wrong_values: int = 0                               # acked writes the leader holds with another value
    standby_missing: dict = field(default_factory=dict)  # standby -> acked writes it lacks after catching up
    split_brain_sample: tuple[str, ...] = ()            # the first few, described
    frozen_s: float | None = None
    lost_keys_sample: tuple[str, ...] = ()
    lost_by_node: dict = field(default_factory=dict)   # who had acknowledged the lost writes
    timeline: dict = field(default_factory=dict)        # timeline.build: acks per node over time, events
    error: str = ""
    extra: dict = field(default_factory=dict)            # scenario-specific counts (see the scenario)
    notes: tuple[str, ...] = ()                          # reported, not failing (e.g. a slow rejoin)

    def to_json(self) -> dict:
        data = asdict(self)
        data["lost_keys_sample"] = list(self.lost_keys_sample)
        data["split_brain_sample"] = list(self.split_brain_sample)
        data["notes"] = list(self.notes)
        for k in ("rto_s", "rejoin_s", "frozen_s"):
            if data[k] is not None:
                data[k] = round(data[k], 4)
        return data


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (q in 0..1) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def within_receipt(r: RoundResult) -> bool | None:
    """Whether the round's lost acknowledged writes are all within its final
    (exact) receipt: no more than the writes the old leader discarded, or
    (PostgreSQL, bytes only) none lost unless it discarded some bytes. None
    when there is no exact receipt and something was lost."""
    rc = r.rpo_receipt or {}
    if not rc.get("discarded_by"):
        return None if r.lost_acked_writes else True
    txns, size = rc.get("discarded_transactions", -1), rc.get("discarded_bytes", -1)
    if txns >= 0:
        return r.lost_acked_writes <= txns
    return r.lost_acked_writes == 0 or size > 0


def summarize(rounds: list[RoundResult]) -> dict:
    """Summary statistics over the rounds (seconds, counts)."""
    rtos = [r.rto_s for r in rounds if r.rto_s is not None]
    rejoins = [r.rejoin_s for r in rounds if r.rejoin_s is not None]
    return {
        "rounds": len(rounds),
        "failed_rounds": sum(1 for r in rounds if r.error),
        "rto_median_s": _r(statistics.median(rtos)) if rtos else None,
        "rto_p90_s": _r(quantile(rtos, 0.9)),
        "rto_p95_s": _r(quantile(rtos, 0.95)),
        "rto_min_s": _r(min(rtos, default=None)),
        "rto_max_s": _r(max(rtos, default=None)),
        "rejoin_median_s": _r(statistics.median(rejoins)) if rejoins else None,
        "rejoin_max_s": _r(max(rejoins, default=None)),
        "acked_writes_total": sum(r.acked_writes for r in rounds),
        "lost_acked_writes_total": sum(r.lost_acked_writes for r in rounds),
        "dual_primary_acks_total": sum(r.dual_primary_acks for r in rounds),
        "split_brain_total": sum(r.split_brain for r in rounds),
        "wrong_values_total": sum(r.wrong_values for r in rounds),
        "standby_missing_total": sum(sum(r.standby_missing.values()) for r in rounds),
        # freeze-tree: of those, writes sent after the freeze began (late replies excluded)
        "sent_after_freeze_acks_total": sum(r.extra.get("sent_after_freeze", 0) for r in rounds),
        # Losses even async replication must never have: writes acked by a node that survived.
        "rounds_lost_outside_receipt": sum(1 for r in rounds if within_receipt(r) is False),
        "rounds_lost_without_exact_receipt": sum(1 for r in rounds if within_receipt(r) is None),
        "lost_acked_by_survivors_total": sum(n for r in rounds for node, n in r.lost_by_node.items()
                                             if node != r.old_primary),
        # Reported, not failing: what a round noted (a slow rejoin, writes waiting for one).
        "notes": [f"round {r.round}: {n}" for r in rounds for n in r.notes],
    }


def problems(summary: dict, sync: bool) -> list[str]:
    """What makes a drill fail, from its summary: failed rounds, any sign of
    two primaries, a write lost that a surviving node had acknowledged, and
    in synchronous mode any lost acknowledged write."""
    out = []
    if summary["failed_rounds"]:
        out.append(f"{summary['failed_rounds']} rounds failed")
    if summary.get("split_brain_total"):
        out.append(f"{summary['split_brain_total']} split-brain events")
    if summary.get("wrong_values_total"):
        out.append(f"{summary['wrong_values_total']} acknowledged writes read back with another value")
    if summary.get("standby_missing_total"):
        out.append(f"{summary['standby_missing_total']} writes the leader holds missing on a caught-up standby")
    if summary["dual_primary_acks_total"]:
        out.append(f"{summary['dual_primary_acks_total']} writes acknowledged by two primaries")
    if summary["lost_acked_by_survivors_total"]:
        out.append(f"{summary['lost_acked_by_survivors_total']} lost writes had been acknowledged by a survivor")
    if sync and summary["lost_acked_writes_total"]:
        out.append(f"{summary['lost_acked_writes_total']} acknowledged writes lost in synchronous mode")
    return out


def document(rounds: list[RoundResult], config: dict) -> dict:
    """The ``--json`` document: ``{"rounds": [...], "summary": {...}, "config": {...}}``."""
    return {"rounds": [r.to_json() for r in rounds], "summary": summarize(rounds), "config": config}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


_TWO_PRIMARY_SCENARIOS = ("freeze", "partition")   # where a client keeps writing to the old primary


def rounds_table(rounds: list[RoundResult]) -> str:
    rows = [[r.round, r.old_primary, r.new_primary or "-", _s(r.rto_s), _s(r.rejoin_s), r.acked_writes,
             r.lost_acked_writes, r.split_brain,
             r.dual_primary_acks if r.scenario.startswith(_TWO_PRIMARY_SCENARIOS) else "-",
             r.rpo_receipt.get("bytes_possibly_lost", "-") if r.rpo_receipt else "-", _receipt(r), r.error or "ok"]
            for r in rounds]
    return format_table(["round", "old_primary", "new_primary", "rto_s", "rejoin_s", "acked", "lost",
                         "split_brain", "dual_acks", "rpo_bytes?", "receipt", "result"], rows)


def _receipt(r: RoundResult) -> str:
    """The exact receipt in one cell: ``<writes>w/<bytes>B`` discarded, ``?`` unknown, ``-`` none yet."""
    rc = r.rpo_receipt or {}
    if not rc.get("discarded_by"):
        return "-"
    txns, size = rc.get("discarded_transactions", -1), rc.get("discarded_bytes", -1)
    return "?" if size < 0 else f"{txns}w/{size}B" if txns >= 0 else f"{size}B"


def summary_text(summary: dict) -> str:
    return (f"RTO median {_s(summary['rto_median_s'])} s, p90 {_s(summary['rto_p90_s'])} s, "
            f"max {_s(summary['rto_max_s'])} s; rejoin median {_s(summary['rejoin_median_s'])} s; "
            f"acknowledged writes {summary['acked_writes_total']}, lost {summary['lost_acked_writes_total']}; "
            f"split-brain events {summary['split_brain_total']}; "
            f"wrong values {summary['wrong_values_total']}, missing on caught-up standbys "
            f"{summary['standby_missing_total']}; "
            f"rounds lost outside the receipt {summary['rounds_lost_outside_receipt']}; "
            f"failed rounds {summary['failed_rounds']}"
            + "".join(f"\nnote: {n}" for n in summary.get("notes", ())))
