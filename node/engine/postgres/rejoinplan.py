"""Rewind or re-clone a diverged node, whichever copies less; where they forked.

Pure: sizes and timeline histories in, decisions and LSNs out. The engine
reads the facts (``replication.source_sizes`` on the upstream, the history
files on both sides) and acts (``transitions.TransitionsMixin``).

Why: pg_rewind (PostgreSQL 15) copies every file of the source that is not a
relation data file *in full*, and that includes every WAL segment in the
source's ``pg_wal``. Each promotion starts its timeline with a new 16 MiB
segment, and segments of the same number on old timelines stay until the
WAL moves ``wal_keep_size`` past them, so after many failovers on a quiet
database ``pg_wal`` holds hundreds of MiB to GiB: a rewind of a 200-byte
divergence then copies all of it (33 s seen under load). A base backup
copies the data files plus only the WAL written while it runs.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

# A rewind keeps the node's own files and its exact receipt from pg_rewind,
# and a base backup has fixed costs (an upstream checkpoint, a full start):
# with a pg_wal of up to ~150 MiB both took a few seconds here; at 225 MiB of
# pg_wal against 22 MiB of data the base backup took 1.2-1.7 s, pg_rewind
# 2.9-4.7 s. Re-clone only when it copies several times less (a long-lived
# cluster: GiBs of pg_wal).
CLONE_MARGIN = 4.0


class RejoinWay(enum.Enum):
    REWIND = "rewind"
    CLONE = "clone"


@dataclass(frozen=True)
class SourceSizes:
    """What the upstream holds, in bytes: its ``pg_wal`` (``wal``), its
    databases (``data``) and one WAL segment (``segment``)."""
    wal: int
    data: int
    segment: int


def rewind_or_clone(sizes: SourceSizes | None, allow_clone: bool) -> tuple[RejoinWay, str]:
    """REWIND unless a re-clone is allowed and copies less than a rewind
    would by ``CLONE_MARGIN``: a rewind copies at least the source's whole
    ``pg_wal``; a base backup its databases and about a segment of WAL.
    Unknown sizes: REWIND (the known path). Returns (way, why)."""
    if sizes is None:
        return RejoinWay.REWIND, "upstream sizes unknown"
    rewind, clone = sizes.wal, sizes.data + sizes.segment
    why = f"rewind copies >= {_mib(rewind)} (upstream pg_wal), a re-clone ~{_mib(clone)}"
    if allow_clone and rewind > CLONE_MARGIN * clone:
        return RejoinWay.CLONE, why
    return RejoinWay.REWIND, why


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _segments(tli: int, history: dict[int, int]) -> list[tuple[int, int, int | None]]:
    """(timeline, begin LSN, end LSN or None for the current one), oldest first,
    from a history file's {parent timeline: switchpoint}."""
    out: list[tuple[int, int, int | None]] = []
    begin = 0
    for parent in sorted(history):
        out.append((parent, begin, history[parent]))
        begin = history[parent]
    out.append((tli, begin, None))
    return out


def fork_point(local_tli: int, local_history: dict[int, int], up_tli: int,
               up_history: dict[int, int]) -> int | None:
    """The LSN where two servers' histories part, as pg_rewind finds it: on
    the last timeline both went through from the same start, the earlier of
    their ends there. None when they share no timeline (or never part: both
    still on one timeline, which says nothing about their WAL)."""
    mine, theirs = _segments(local_tli, local_history), _segments(up_tli, up_history)
    common = None
    for a, b in zip(mine, theirs):
        if a[0] != b[0] or a[1] != b[1]:
            break
        common = (a, b)
    if common is None:
        return None
    ends = [e for e in (common[0][2], common[1][2]) if e is not None]
    return min(ends) if ends else None
