"""Timeline history: branching, files, and fork-point detection for rewind."""
from __future__ import annotations

import pytest

from walrus_ha.common.errors import CorruptWal
from walrus_ha.common.lsn import MAX_LSN
from walrus_ha.node.engine.embedded.timeline import (
    TimelineHistory,
    find_divergence,
    latest_timeline,
    read_history,
    remove_histories_after,
    write_history,
)

T1 = TimelineHistory()
T2_AT_100 = T1.branch(2, 100, "failover")
T3 = T2_AT_100.branch(3, 250, "switchover")
T2_AT_150 = T1.branch(2, 150, "split brain")     # the same number started elsewhere

CASES = [
    # id, local history, local WAL end, upstream history, expected (common, fork, diverged)
    ("same-timeline", T1, 500, T1, (1, MAX_LSN, False)),
    ("behind-switch", T1, 80, T2_AT_100, (1, 100, False)),
    ("exactly-at-switch", T1, 100, T2_AT_100, (1, 100, False)),
    ("past-switch", T1, 120, T2_AT_100, (1, 100, True)),
    ("two-switches-behind", T1, 90, T3, (1, 100, False)),
    ("on-parent-past-second-switch", T2_AT_100, 300, T3, (2, 250, True)),
    ("on-parent-before-second-switch", T2_AT_100, 200, T3, (2, 250, False)),
    ("same-number-other-start", T2_AT_150, 170, T2_AT_100, (1, 100, True)),
    ("upstream-is-behind-my-timeline", T3, 300, T2_AT_100, (2, 250, True)),
    ("nothing-shared", TimelineHistory(5, ()), 10, T1, (0, 0, True)),
]


@pytest.mark.parametrize("local,end,upstream,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_divergence(local, end, upstream, expected):
    d = find_divergence(local, end, upstream)
    assert (d.common_timeline, d.fork_lsn, d.diverged) == expected


def test_branch_rules():
    assert T3.timelines() == (1, 2, 3) and T3.starts() == (0, 100, 250)
    assert T3.end_of(1) == 100 and T3.end_of(3) == MAX_LSN
    assert [T3.timeline_at(x) for x in (0, 99, 100, 249, 250, 10**9)] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        T3.branch(3, 300)
    with pytest.raises(ValueError):
        T3.branch(4, 200)
    with pytest.raises(KeyError):
        T2_AT_100.end_of(7)


def test_history_files_roundtrip(tmp_path):
    d = str(tmp_path)
    assert read_history(d, 1) == T1 and latest_timeline(d) == 1
    write_history(d, T2_AT_100)
    write_history(d, T3)
    assert read_history(d, 3) == T3 and read_history(d, 2) == T2_AT_100
    assert latest_timeline(d) == 3
    with pytest.raises(CorruptWal):
        read_history(d, 4)
    remove_histories_after(d, 2)
    assert latest_timeline(d) == 2
    (tmp_path / "00000009.history").write_text("1\tnot-an-lsn\tx\n")
    with pytest.raises(CorruptWal):
        read_history(d, 9)
