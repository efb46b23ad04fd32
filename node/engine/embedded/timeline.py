"""Timelines and their history, like PostgreSQL's ``<TLI>.history`` files.

Each promotion starts a new timeline that forks from its parent at a switch
LSN. The history of timeline N lists every ancestor and the LSN where it
ended. Rule of the pure part: a node whose WAL goes past the point where its
timeline ended in the new primary's history has diverged and must be rewound
to that point (or re-cloned) before it may follow.

Files: ``<dir>/<TLI as 8 hex>.history``, one line per ancestor, oldest first:
``parent_tli<TAB>switch_lsn (0/16B3748)<TAB>reason``. Written atomically.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from walrus_ha.common.errors import CorruptWal
from walrus_ha.common.lsn import MAX_LSN, format_lsn, parse_lsn

_NAME_RE = re.compile(r"^([0-9A-F]{8})\.history$")


@dataclass(frozen=True)
class HistoryEntry:
    """Timeline ``timeline`` ended at ``end_lsn`` (its child starts there)."""
    timeline: int
    end_lsn: int
    reason: str = ""


@dataclass(frozen=True)
class TimelineHistory:
    """Timeline ``timeline`` and its ancestors, oldest first."""
    timeline: int = 1
    entries: tuple[HistoryEntry, ...] = ()

    def branch(self, new_tli: int, switch_lsn: int, reason: str = "") -> TimelineHistory:
        """The history of a child timeline forking at ``switch_lsn``.
        Raises ValueError if the child is not newer or the LSN goes backwards."""
        if new_tli <= self.timeline:
            raise ValueError(f"new timeline {new_tli} must be above {self.timeline}")
        if self.entries and switch_lsn < self.entries[-1].end_lsn:
            raise ValueError(f"switch LSN {format_lsn(switch_lsn)} is before the parent's start")
        return TimelineHistory(new_tli, self.entries + (HistoryEntry(self.timeline, switch_lsn, reason),))

    def timelines(self) -> tuple[int, ...]:
        """Every timeline in this history, oldest first, current last."""
        return tuple(e.timeline for e in self.entries) + (self.timeline,)

    def starts(self) -> tuple[int, ...]:
        """Start LSN of each timeline in ``timelines()`` (the first starts at 0)."""
        return (0,) + tuple(e.end_lsn for e in self.entries)

    def end_of(self, tli: int) -> int:
        """Where ``tli`` ended in this history (``MAX_LSN`` for the current
        timeline). Raises KeyError if ``tli`` is not in this history."""
        if tli == self.timeline:
            return MAX_LSN
        for e in self.entries:
            if e.timeline == tli:
                return e.end_lsn
        raise KeyError(tli)

    def timeline_at(self, lsn: int) -> int:
        """The timeline that WAL position ``lsn`` belongs to in this history."""
        for e in self.entries:
            if lsn < e.end_lsn:
                return e.timeline
        return self.timeline


@dataclass(frozen=True)
class Divergence:
    """Result of comparing a local WAL with an upstream's history.

    ``fork_lsn`` is where the two histories part (``MAX_LSN`` if they do not);
    ``diverged`` is True when the local WAL holds bytes at/after it, so the
    local node must drop its WAL from ``fork_lsn`` on before following.
    """
    common_timeline: int
    fork_lsn: int
    diverged: bool


def find_divergence(local: TimelineHistory, local_end: int, upstream: TimelineHistory) -> Divergence:
    """Compare the local history and WAL end with the upstream's history.

    Pure. The common timeline is the newest one both chains share with the
    same start LSN (the same number started elsewhere is a different
    timeline); the fork is the earlier of the two ends of it. No common
    timeline means the logs share nothing (fork at 0).
    """
    lt, ut = local.timelines(), upstream.timelines()
    ls, us = local.starts(), upstream.starts()
    common = None
    for i in range(min(len(lt), len(ut))):
        if lt[i] != ut[i] or ls[i] != us[i]:
            break
        common = lt[i]
    if common is None:
        return Divergence(0, 0, local_end > 0)
    fork = min(local.end_of(common), upstream.end_of(common))
    return Divergence(common, fork, local_end > fork)


# ---------------------------------------------------------------- files
def history_path(directory: str, tli: int) -> str:
    return os.path.join(directory, f"{tli:08X}.history")


def write_history(directory: str, history: TimelineHistory) -> None:
    """Atomically and durably write the history file of ``history.timeline``."""
    os.makedirs(directory, exist_ok=True)
    lines = [f"{e.timeline}\t{format_lsn(e.end_lsn)}\t{e.reason.replace(chr(10), ' ')}\n"
             for e in history.entries]
    path = history_path(directory, history.timeline)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_history(tli: int, text: str) -> TimelineHistory:
    """Parse a history file's text. Raises CorruptWal on a malformed line."""
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            entries.append(HistoryEntry(int(parts[0]), parse_lsn(parts[1]),
                                        parts[2] if len(parts) > 2 else ""))
        except (ValueError, IndexError):
            raise CorruptWal(f"timeline {tli} history line {n} is malformed: {line!r}") from None
    return TimelineHistory(tli, tuple(entries))


def read_history(directory: str, tli: int) -> TimelineHistory:
    """The history of ``tli``; timeline 1 (or a missing file for it) has none.
    Raises CorruptWal if another timeline's file is missing or malformed."""
    path = history_path(directory, tli)
    if not os.path.exists(path):
        if tli == 1:
            return TimelineHistory()
        raise CorruptWal(f"timeline history file {path} is missing")
    with open(path, encoding="utf-8") as f:
        return parse_history(tli, f.read())


def latest_timeline(directory: str) -> int:
    """The highest timeline with a history file (1 if none)."""
    if not os.path.isdir(directory):
        return 1
    tlis = [int(m.group(1), 16) for m in map(_NAME_RE.match, os.listdir(directory)) if m]
    return max(tlis, default=1)


def remove_histories_after(directory: str, tli: int) -> None:
    """Delete history files of timelines above ``tli`` (after a rewind)."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        m = _NAME_RE.match(name)
        if m and int(m.group(1), 16) > tli:
            os.unlink(os.path.join(directory, name))
