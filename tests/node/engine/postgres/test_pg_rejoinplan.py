"""Rewind or re-clone (``rejoinplan``, pure): which copies less, and where
two servers' timeline histories part, as pg_rewind finds it."""
from __future__ import annotations

import pytest

from walrus_ha.node.engine.postgres.rejoinplan import RejoinWay, SourceSizes, fork_point, rewind_or_clone

MiB = 2 ** 20
SEG = 16 * MiB


@pytest.mark.parametrize("sizes, allow, way", [
    (None, True, RejoinWay.REWIND),
    (SourceSizes(wal=48 * MiB, data=23 * MiB, segment=SEG), True, RejoinWay.REWIND),     # fresh cluster
    (SourceSizes(wal=156 * MiB, data=23 * MiB, segment=SEG), True, RejoinWay.REWIND),    # at the margin
    (SourceSizes(wal=157 * MiB, data=23 * MiB, segment=SEG), True, RejoinWay.CLONE),
    (SourceSizes(wal=1400 * MiB, data=30 * MiB, segment=SEG), True, RejoinWay.CLONE),    # many timelines
    (SourceSizes(wal=1400 * MiB, data=30 * MiB, segment=SEG), False, RejoinWay.REWIND),  # clone not allowed
    (SourceSizes(wal=1024 * MiB, data=500_000 * MiB, segment=SEG), True, RejoinWay.REWIND),  # big database
], ids=["unknown", "fresh", "margin", "past-margin", "many-timelines", "not-allowed", "big-db"])
def test_rewind_or_clone(sizes, allow, way):
    got, why = rewind_or_clone(sizes, allow)
    assert got is way
    assert why


A, B, C = 0x5030FD0, 0x5031000, 0x5045C10


@pytest.mark.parametrize("local, up, fork", [
    ((1, {}), (3, {1: A, 2: B}), A),                      # crashed on timeline 1, two promotions since
    ((2, {1: A}), (3, {1: A, 2: B}), B),                  # the heir, killed after its promotion
    ((3, {1: A, 2: B}), (4, {1: A, 2: C}), B),            # siblings off timeline 2: the earlier end
    ((3, {1: A, 2: C}), (4, {1: A, 2: B}), B),
    ((4, {1: A, 2: B, 3: C}), (3, {1: A, 2: B}), C),      # the upstream is behind on timeline 3
    ((2, {1: A}), (2, {1: B}), A),                        # two timelines 2 from different points
    ((5, {}), (5, {}), None),                             # one timeline: nothing to tell
    ((2, {1: A}), (1, {}), A),
], ids=["from-1", "heir", "siblings", "siblings-swapped", "upstream-behind", "same-number", "same-tli",
        "upstream-on-1"])
def test_fork_point(local, up, fork):
    assert fork_point(local[0], local[1], up[0], up[1]) == fork
