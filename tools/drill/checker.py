"""The drill checker: pure arithmetic over what the workload recorded.

No clocks, no I/O: every function takes the recorded acknowledgements (with
monotonic ack times) and the instants the drill noted, and returns numbers.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ack:
    """One write the database acknowledged: ``key`` was confirmed by ``node``
    (the primary the writer addressed) at monotonic time ``at``."""
    key: str
    at: float
    node: str
    term: int = 0


def first_ack_after(acks: Iterable[Ack], after: float, excluding: str) -> Ack | None:
    """The earliest ack later than ``after`` by a node other than ``excluding``."""
    best = None
    for a in acks:
        if a.at > after and a.node != excluding and (best is None or a.at < best.at):
            best = a
    return best


def rto(acks: Iterable[Ack], fault_at: float, old_primary: str) -> tuple[float, str] | None:
    """(seconds from the fault to the first write acknowledged by a new
    primary, that primary's name), or None if no new primary acknowledged any."""
    first = first_ack_after(acks, fault_at, old_primary)
    if first is None:
        return None
    return first.at - fault_at, first.node


def lost_writes(acks: Iterable[Ack], present: set[str]) -> list[str]:
    """Keys that were acknowledged but are not in ``present`` (read back from
    the surviving primary), in acknowledgement order."""
    return [a.key for a in sorted(acks, key=lambda a: a.at) if a.key not in present]


def dual_primary_acks(acks: Iterable[Ack], old_primary: str, new_primary: str) -> list[Ack]:
    """Acks by the old primary later than the new primary's first ack: two
    primaries acknowledging at once (split brain). Must always be empty."""
    acks = list(acks)
    new_first = min((a.at for a in acks if a.node == new_primary), default=None)
    if new_first is None:
        return []
    return [a for a in acks if a.node == old_primary and a.at > new_first]


def acked_by(acks: Iterable[Ack]) -> dict[str, int]:
    """Number of acks per node."""
    counts: dict[str, int] = {}
    for a in acks:
        counts[a.node] = counts.get(a.node, 0) + 1
    return counts


def lost_by_node(acks: Iterable[Ack], lost: Iterable[str]) -> dict[str, int]:
    """Lost keys counted by the node that acknowledged them. Async mode may
    lose the old primary's last acks; a loss acked by any other node is a bug."""
    node_of = {a.key: a.node for a in acks}
    counts: dict[str, int] = {}
    for key in lost:
        node = node_of.get(key, "?")
        counts[node] = counts.get(node, 0) + 1
    return counts
