"""The exact RPO receipt on real PostgreSQL: a rewound old primary reports
what pg_rewind dropped, from where the servers diverged to its WAL end."""
from __future__ import annotations

import pytest

from pgtest_util import sql, streaming, upstream_of, wait_until
from walrus_ha.node.engine.base import RejoinMethod
from walrus_ha.node.engine.postgres import rejoinplan

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _lsn(engine) -> int:
    return engine.status().flush_lsn


def test_rewound_old_primary_reports_what_it_discarded(pg_factory):
    a = pg_factory.primary("a")
    sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    b = pg_factory.standby("b", a)
    wait_until(lambda: streaming(b, a), what="b streams")
    b.promote(1)                                         # a keeps running: split brain
    fork_floor = _lsn(a)
    sql(a, "INSERT INTO kv SELECT 'lost' || g, repeat('x', 100) FROM generate_series(1, 1000) g")
    written = _lsn(a) - fork_floor
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    assert a.last_discard is None
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.REWOUND
    d = a.last_discard
    assert d is not None and d.term == 1 and d.upstream.startswith("b@")
    assert d.fork_lsn <= fork_floor < d.end_lsn
    # Everything a wrote after the fork, plus at most the shutdown checkpoint
    # record and page padding PostgreSQL adds when it is stopped for the rewind.
    assert written <= d.bytes == d.end_lsn - d.fork_lsn
    assert (d.records, d.transactions) == (-1, -1)


def test_old_primary_recloned_when_cheaper_reports_what_it_discarded(pg_factory, monkeypatch):
    """A re-clone chosen over a rewind (``rejoinplan``; forced here: any
    pg_wal counts as dearer) drops the same tail and says so the same way."""
    monkeypatch.setattr(rejoinplan, "CLONE_MARGIN", 0.0)
    a = pg_factory.primary("a")
    sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    b = pg_factory.standby("b", a)
    sql(a, "INSERT INTO kv VALUES ('common', '1')")
    wait_until(lambda: streaming(b, a) and b.status().flush_lsn >= _lsn(a), what="b caught up")
    b.promote(1)
    fork_floor = _lsn(a)
    sql(a, "INSERT INTO kv SELECT 'lost' || g, repeat('x', 100) FROM generate_series(1, 1000) g")
    written = _lsn(a) - fork_floor
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.RECLONED
    d = a.last_discard
    assert d is not None and d.term == 1 and d.upstream.startswith("b@")
    assert d.fork_lsn <= fork_floor < d.end_lsn
    assert written <= d.bytes == d.end_lsn - d.fork_lsn
    wait_until(lambda: streaming(a, b), what="the re-cloned node streams from b")
    wait_until(lambda: {r[0] for r in sql(a, "SELECT k FROM kv")} == {"common", "new"}, what="only b's rows")
