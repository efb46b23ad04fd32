"""WAL counters for metrics: bytes written and fdatasync latency.

The one rule: cheap enough for the commit path. ``Wal`` updates them under
its own lock (plain integer adds and one bisect per fdatasync; no lock, no
allocation here), and a scrape reads a ``snapshot`` taken under that lock.
The engine keeps one ``WalStats`` for its life and hands it to every ``Wal``
it opens, so the counters never go back when the storage is reopened.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# Upper bounds (seconds) of the fdatasync latency histogram: 50 us to 2.5 s
# (an fdatasync here costs 0.1-0.3 ms; a sick disk takes seconds).
FSYNC_BUCKETS: tuple[float, ...] = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class WalStatsSnapshot:
    """``buckets``: (upper bound, count of fdatasyncs <= it), cumulative, the
    last bound is ``inf`` (= ``fsync_count``)."""
    bytes_written: int
    fsync_count: int
    fsync_seconds: float
    buckets: tuple[tuple[float, int], ...]


class WalStats:
    """Bytes appended (own records and a standby's received chunks alike)
    and one histogram observation per fdatasync round of ``Wal.flush``."""
    __slots__ = ("bytes_written", "fsync_count", "fsync_seconds", "_counts")

    def __init__(self) -> None:
        self.bytes_written = 0
        self.fsync_count = 0
        self.fsync_seconds = 0.0
        self._counts = [0] * (len(FSYNC_BUCKETS) + 1)

    def wrote(self, n: int) -> None:
        self.bytes_written += n

    def fsynced(self, seconds: float) -> None:
        self._counts[bisect_left(FSYNC_BUCKETS, seconds)] += 1
        self.fsync_count += 1
        self.fsync_seconds += seconds

    def snapshot(self) -> WalStatsSnapshot:
        cumulative, total = [], 0
        for bound, n in zip((*FSYNC_BUCKETS, float("inf")), self._counts):
            total += n
            cumulative.append((bound, total))
        return WalStatsSnapshot(self.bytes_written, self.fsync_count, self.fsync_seconds, tuple(cumulative))


__all__ = ["FSYNC_BUCKETS", "WalStats", "WalStatsSnapshot"]
