"""The drill checker: pure arithmetic over what the workload recorded.

No clocks, no I/O: every function takes the recorded acknowledgements (with
monotonic ack times) and the instants the drill noted, and returns numbers.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Ack:
    """One write the database acknowledged: ``key`` (with ``value``) was
    confirmed by ``node`` (the primary the writer addressed) at monotonic
    time ``at``, at leader ``term`` (0: the engine does not report one), at a
    synchronous commit level or not; ``sent``: when the writer sent it
    (monotonic; 0: not recorded)."""
    key: str
    at: float
    node: str
    term: int = 0
    value: str = ""
    sync: bool = False
    sent: float = 0.0


class Rule(StrEnum):
    """Why an acknowledgement counts as split brain."""
    OLDER_TERM = "older_term"        # acked at a term below one already acked by another node
    SHARED_TERM = "shared_term"      # two nodes acked writes in one term


@dataclass(frozen=True)
class SplitBrain:
    """One split-brain event: ``ack`` broke ``rule``; ``against`` is the
    earlier acknowledgement it conflicts with."""
    rule: Rule
    ack: Ack
    against: Ack

    def describe(self) -> str:
        a, b = self.ack, self.against
        if self.rule is Rule.OLDER_TERM:
            return (f"{a.node} acknowledged {a.key} at term {a.term} after {b.node} had acknowledged "
                    f"{b.key} at term {b.term}")
        return f"{a.node} and {b.node} both acknowledged writes at term {a.term} ({b.key}, {a.key})"


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


def dual_primary_acks(acks: Iterable[Ack], old_primary: str, new_primary: str,
                      kept: Mapping[str, str] | None = None) -> list[Ack]:
    """Acks by the old primary later than the new primary's first ack: two
    primaries acknowledging at once (split brain). Must always be empty.
    With ``kept`` (key -> value the final leader holds), late replies that
    ``overlaps_and_kept`` excuses are left out (see ``late_dual_acks_kept``)."""
    acks = list(acks)
    new_first = min((a.at for a in acks if a.node == new_primary), default=None)
    if new_first is None:
        return []
    return [a for a in acks if a.node == old_primary and a.at > new_first
            and not (kept is not None and overlaps_and_kept(a, new_first, kept))]


def late_dual_acks_kept(acks: Iterable[Ack], old_primary: str, new_primary: str,
                        kept: Mapping[str, str]) -> int:
    """How many of ``dual_primary_acks`` ``kept`` excuses (reported, not failed)."""
    acks = list(acks)
    return (len(dual_primary_acks(acks, old_primary, new_primary))
            - len(dual_primary_acks(acks, old_primary, new_primary, kept)))


def overlaps_and_kept(ack: Ack, newer_first_at: float, kept: Mapping[str, str]) -> bool:
    """A late reply that proves no second primary: the write was sent before
    the newer primary's first ack (the two overlap in time, so it may be
    ordered first) and the final leader holds it with the acknowledged value
    (it reached the new primary's history before the fork: nothing diverged).
    A frozen primary whose commit a synchronous standby already held, thawed
    after the takeover, answers so (a freeze takes effect some milliseconds
    after it is asked for; ``docker pause`` mid-commit)."""
    return 0 < ack.sent < newer_first_at and ack.key in kept and kept[ack.key] == ack.value


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


def split_brain(acks: Iterable[Ack], kept: Mapping[str, str] | None = None) -> list[SplitBrain]:
    """Every acknowledgement that proves two primaries at once, in ack order.

    Over acks that carry a term (term > 0): an ack by a node at a term lower
    than one another node acknowledged earlier (the old primary kept
    acknowledging after a newer leader did), and an ack by a second node in a
    term in which another node already acknowledged (one term, one leader).
    Acks without a term are not judged here (see ``dual_primary_acks``).

    ``kept`` (key -> value read back from the final leader) excuses one kind
    of older-term ack: see ``concurrent_late_ack``."""
    return [e for e in _term_conflicts(acks) if not concurrent_late_ack(e, kept or {})]


def concurrent_late_ack(event: SplitBrain, kept: Mapping[str, str]) -> bool:
    """An older-term ack ``overlaps_and_kept`` excuses."""
    return event.rule is Rule.OLDER_TERM and overlaps_and_kept(event.ack, event.against.at, kept)


def late_acks_kept(acks: Iterable[Ack], kept: Mapping[str, str]) -> list[SplitBrain]:
    """The older-term acks ``split_brain`` excused (reported, not failed)."""
    return [e for e in _term_conflicts(acks) if concurrent_late_ack(e, kept)]


def _term_conflicts(acks: Iterable[Ack]) -> list[SplitBrain]:
    events: list[SplitBrain] = []
    newest: Ack | None = None                  # the earliest ack at the highest term so far
    owner: dict[int, Ack] = {}                 # term -> the first ack in that term
    for a in sorted((a for a in acks if a.term > 0), key=lambda a: a.at):
        first = owner.setdefault(a.term, a)
        if first.node != a.node:
            events.append(SplitBrain(Rule.SHARED_TERM, a, first))
        elif newest is not None and a.term < newest.term and newest.node != a.node:
            events.append(SplitBrain(Rule.OLDER_TERM, a, newest))
        if newest is None or a.term > newest.term:
            newest = a
    return events


def wrong_values(acks: Iterable[Ack], read_back: Mapping[str, str | None]) -> list[str]:
    """Keys whose acknowledged value is not what ``read_back`` (key -> value
    read from one node, None when absent) holds: missing or different. Keys
    the read-back did not cover are not judged. Later acks of a key win."""
    latest: dict[str, Ack] = {}
    for a in sorted(acks, key=lambda a: a.at):
        latest[a.key] = a
    return [k for k, a in latest.items() if k in read_back and read_back[k] != a.value]


def unreplicated_sync_acks(acks: Iterable[Ack], held: Mapping[str, set[str]]) -> list[Ack]:
    """Acks at a synchronous level that no node other than the acknowledging
    primary holds (``held``: node -> keys read back from it). Such an ack
    broke the synchronous promise even if the write survived by luck."""
    return [a for a in sorted(acks, key=lambda a: a.at)
            if a.sync and not any(a.key in keys for node, keys in held.items() if node != a.node)]


def receipt_gap(lost_async: int, receipt_writes: int | None) -> int | None:
    """Observed async loss minus what the failover's receipt announced
    (None when there was no receipt). Positive: writes lost that the receipt
    did not own up to; a correct receipt never under-counts."""
    if receipt_writes is None:
        return None
    return lost_async - receipt_writes


def nth_ack_after(acks: Iterable[Ack], after: float, count: int, node: str | None = None) -> float | None:
    """Time of the ``count``-th ack later than ``after`` (by ``node`` if
    given): when writes are seen to flow again; None until there are that many."""
    times = sorted(a.at for a in acks if a.at > after and (node is None or a.node == node))
    return times[count - 1] if len(times) >= count else None


def write_gap(acks: Iterable[Ack], start: float, end: float) -> float:
    """The longest stretch of ``[start, end]`` in which no write was
    acknowledged (by anyone): the write unavailability a fault caused. The
    window's own edges count, so a stall still going on at ``end`` counts in
    full."""
    times = sorted(a.at for a in acks if start <= a.at <= end)
    points = [start, *times, end]
    return max(b - a for a, b in zip(points, points[1:]))


@dataclass(frozen=True)
class TakeoverVerdict:
    """How a round in which nodes were killed and restarted went: ``problems``
    fail it; ``notes`` are reported but do not (e.g. a slow rejoin)."""
    problems: tuple[str, ...]
    notes: tuple[str, ...]


def takeover_verdict(failover_s: float | None, writable_s: float | None, rejoin_s: Mapping[str, float | None],
                     failover_limit_s: float, slow_rejoin_s: float) -> TakeoverVerdict:
    """The pass rule of a takeover after killed nodes (``double-kill``).

    ``failover_s``: fault -> a new primary holds the leader key (the
    orchestrator's part, None: never); ``writable_s``: fault -> the first
    write it acknowledged (None: never, within the drill's wait);
    ``rejoin_s``: restarted node -> restart to streaming again (None: did
    not). The round fails when no new primary took over within
    ``failover_limit_s``, or the cluster never acknowledged a write. In
    synchronous mode writes may wait for a restarted node's rejoin (the new
    primary has no other standby): that is reported, as is every rejoin
    slower than ``slow_rejoin_s``, but neither fails the round when the
    cluster became writable and nothing was lost (the caller judges loss)."""
    problems, notes = [], []
    if failover_s is None or failover_s > failover_limit_s:
        problems.append(f"no new primary within {failover_limit_s:g} s of the fault"
                        + ("" if failover_s is None else f" (took {failover_s:.3f} s)"))
    if writable_s is None:
        problems.append("no write acknowledged after the fault")
    elif failover_s is not None and not problems and writable_s > failover_limit_s:
        notes.append(f"writable {writable_s:.3f} s after the fault, {writable_s - failover_s:.3f} s after the "
                     f"takeover (waiting for a standby to rejoin)")
    for node, took in sorted(rejoin_s.items()):
        if took is None:
            notes.append(f"{node} did not rejoin")
        elif took > slow_rejoin_s:
            notes.append(f"slow rejoin: {node} streamed again {took:.3f} s after its restart "
                         f"(> {slow_rejoin_s:g} s)")
    return TakeoverVerdict(tuple(problems), tuple(notes))
