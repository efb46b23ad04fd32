"""Which history record an old leader's discard report completes (pure)."""
from __future__ import annotations

import pytest

from walrus_ha.common.records import HistoryRecord
from walrus_ha.orchestrator.receipts import pick


def rec(term, old="a", new="b", started=100.0, **kw) -> HistoryRecord:
    return HistoryRecord(term=term, old_leader=old, new_leader=new, started_at=started, **kw)


REPORT = {"term": 3, "at": 200.0, "bytes": 5000, "records": 30, "transactions": 25, "fork_lsn": 1000,
          "end_lsn": 7000}

CASES = [
    ("completes-the-failover-that-replaced-it", [rec(2), rec(3)], "a", REPORT, 3),
    ("newest-record-not-after-the-rejoin-term", [rec(2), rec(3), rec(4)], "a", REPORT, 3),
    ("not-a-record-of-another-old-leader", [rec(3, old="c")], "a", REPORT, None),
    ("not-a-failover-that-started-after-the-report", [rec(3, started=300.0)], "a", REPORT, None),
    ("not-when-it-became-the-new-leader", [rec(3, old="a", new="a")], "a", REPORT, None),
]


@pytest.mark.parametrize("history,member,report,term", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pick(history, member, report, term):
    got = pick(history, member, report)
    assert (got.term if got else None) == term
    if got is not None:
        assert (got.discarded_by, got.discarded_bytes, got.discarded_records, got.discarded_transactions,
                got.discard_fork_lsn, got.discard_end_lsn) == (member, 5000, 30, 25, 1000, 7000)


def test_a_completed_receipt_is_never_overwritten():
    done = rec(3, discarded_by="a", discarded_bytes=10, discarded_records=1, discarded_transactions=1)
    later = {**REPORT, "at": 500.0, "bytes": 0, "records": 0, "transactions": 0}
    assert pick([done], "a", later) is done


def test_unknown_counts_stay_unknown():
    got = pick([rec(3)], "a", {"term": 3, "at": 200.0, "bytes": 800, "fork_lsn": 1, "end_lsn": 801})
    assert (got.discarded_bytes, got.discarded_records, got.discarded_transactions) == (800, -1, -1)
