"""Statistics shared by the ``walrus bench`` commands: a latency percentile,
median and min-max across rounds, and the "median (min-max)" cell."""
from __future__ import annotations

import statistics


def percentile(sorted_vals: list[float], q: float) -> float:
    """The value at rank round(q * (n - 1)) of ``sorted_vals``; NaN if empty."""
    if not sorted_vals:
        return float("nan")
    idx = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[idx]


def spread(rounds: list[dict], *keys: str) -> dict:
    """For each key: ``key`` = median over the rounds, ``key_range`` = [min, max]."""
    out: dict = {}
    for k in keys:
        vals = [r[k] for r in rounds]
        out[k] = statistics.median(vals)
        out[f"{k}_range"] = [min(vals), max(vals)]
    return out


def cell(summary: dict, key: str, fmt: str) -> str:
    """``median (min-max)`` of ``key`` in a ``spread`` result, each formatted with ``fmt``."""
    lo, hi = summary[f"{key}_range"]
    return f"{summary[key]:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"
