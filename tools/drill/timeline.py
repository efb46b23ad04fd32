"""One drill round as a timeline, for the report's picture. Pure.

From the round's acknowledgements and the instants the scenario marked
(fault, restart, thaw...), builds plain JSON data: acknowledgements per node
per time bucket, leader changes (a new (node, term) answering), and the
events, all in seconds from the round's first mark.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from walrus_ha.tools.drill.checker import Ack

MAX_BUCKETS = 240
MIN_BUCKET_S = 0.02


def bucket_size(duration_s: float) -> float:
    """A bucket width that keeps the picture under ``MAX_BUCKETS`` columns,
    rounded up to 10 ms."""
    raw = max(MIN_BUCKET_S, duration_s / MAX_BUCKETS)
    return math.ceil(raw * 100) / 100


def leader_changes(acks: Iterable[Ack]) -> list[tuple[float, str, int]]:
    """(time, node, term) each time the acknowledging (node, term) changes, in
    time order; the first ack opens the list."""
    out: list[tuple[float, str, int]] = []
    for a in sorted(acks, key=lambda a: a.at):
        if not out or (out[-1][1], out[-1][2]) != (a.node, a.term):
            out.append((a.at, a.node, a.term))
    return out


def build(acks: Sequence[Ack], events: Sequence[tuple[float, str]], nodes: Sequence[str] = ()) -> dict:
    """The round's timeline (times in seconds from the first event, or the
    first ack when no event was marked)::

        {"bucket_s": 0.05, "duration_s": 6.1,
         "acks": {"node1": [3, 5, 0, ...], ...},      # per bucket, every node listed
         "leaders": [[0.0, "node1", 2], [1.3, "node2", 3]],
         "events": [[1.0, "SIGKILL node1"], ...]}
    """
    times = [a.at for a in acks] + [t for t, _ in events]
    if not times:
        return {"bucket_s": MIN_BUCKET_S, "duration_s": 0.0, "acks": {n: [] for n in nodes},
                "leaders": [], "events": []}
    t0 = min(t for t, _ in events) if events else min(times)
    t0 = min(t0, min(times))
    duration = max(times) - t0
    size = bucket_size(duration)
    count = int(duration / size) + 1
    per_node: dict[str, list[int]] = {n: [0] * count for n in nodes}
    for a in acks:
        row = per_node.setdefault(a.node, [0] * count)
        row[min(count - 1, int((a.at - t0) / size))] += 1
    return {"bucket_s": size, "duration_s": round(duration, 3),
            "acks": dict(sorted(per_node.items())),
            "leaders": [[round(t - t0, 3), n, term] for t, n, term in leader_changes(acks)],
            "events": [[round(t - t0, 3), label] for t, label in sorted(events)]}
