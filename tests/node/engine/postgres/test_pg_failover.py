"""PostgreSQL engine role changes on real servers: promote, follow by reload,
rewind of a diverged old primary, re-clone fallback, lost slots, terms."""
from __future__ import annotations

import os
import pathlib

import pytest

from pgtest_util import sql, streaming, upstream_of, wait_until
from walrus_ha.common.errors import NeedsReclone, StaleTerm, WrongRole
from walrus_ha.node.config import PostgresConfig
from walrus_ha.node.engine.base import RejoinMethod, Role

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _table(engine):
    sql(engine, "CREATE TABLE kv (k text PRIMARY KEY, v text)")


def _keys(engine):
    return {r[0] for r in sql(engine, "SELECT k FROM kv")}


def test_promote_then_follow_by_reload(pg_factory):
    a = pg_factory.primary("a")
    _table(a)
    b = pg_factory.standby("b", a)
    c = pg_factory.standby("c", a)
    sql(a, "INSERT INTO kv VALUES ('before', '1')")
    wait_until(lambda: _keys(b) == {"before"} and _keys(c) == {"before"}, what="replicated")
    a.stop()
    st = b.promote(1)
    assert st.role is Role.PRIMARY and st.term == 1 and st.timeline == 2 and st.upstream == ""
    sql(b, "INSERT INTO kv VALUES ('after', '1')")
    pid = c.postmaster_pid
    c.follow(upstream_of(b), 1)
    wait_until(lambda: streaming(c, b), what="c streams from b")
    assert c.postmaster_pid == pid                       # reload, not restart
    wait_until(lambda: _keys(c) == {"before", "after"}, what="c has b's write")
    assert c.status().timeline == 2
    assert b.promote(1).role is Role.PRIMARY            # idempotent


def test_stale_terms_refused(pg_factory):
    a = pg_factory.primary("a")
    b = pg_factory.standby("b", a)
    a.promote(5)                                         # already primary: stamps the term
    assert a.status().term == 5
    with pytest.raises(StaleTerm):
        a.promote(4)
    b.follow(upstream_of(a), 5)
    with pytest.raises(StaleTerm):
        b.follow(upstream_of(a), 3)
    with pytest.raises(StaleTerm):
        b.promote(4)
    with pytest.raises(StaleTerm):
        b.rejoin(upstream_of(a), 2)
    with pytest.raises(WrongRole):
        a.follow(upstream_of(b), 6)
    assert b.status().role is Role.STANDBY and a.status().role is Role.PRIMARY


def test_rewind_diverged_old_primary(pg_factory):
    a = pg_factory.primary("a")
    _table(a)
    b = pg_factory.standby("b", a)
    sql(a, "INSERT INTO kv VALUES ('common', '1')")
    wait_until(lambda: _keys(b) == {"common"}, what="replicated")
    b.promote(1)                                         # a keeps running: split brain
    sql(a, "INSERT INTO kv SELECT 'lost' || g, 'x' FROM generate_series(1, 1000) g")
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.REWOUND
    st = a.status()
    assert st.role is Role.STANDBY and st.term == 1
    wait_until(lambda: streaming(a, b), what="old primary streams again")
    wait_until(lambda: _keys(a) == {"common", "new"}, what="divergent rows gone")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.NONE     # idempotent


def test_reclone_when_rewind_impossible(pg_factory):
    a = pg_factory.primary("a")
    _table(a)
    b = pg_factory.standby("b", a)
    b.promote(1)
    sql(a, "INSERT INTO kv VALUES ('lost', '1')")
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    a.stop()
    for seg in (a.dir.pgdata / "pg_wal").glob("0000*"):   # rewind needs these
        seg.unlink()
    with pytest.raises(NeedsReclone):
        a.rejoin(upstream_of(b), 1, allow_reclone=False)
    assert a.status().role is Role.STOPPED                # never started as a primary
    assert a.status().needs_reclone
    with pytest.raises(NeedsReclone):
        a.start()                                         # half-rewound data stays down
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.RECLONED
    wait_until(lambda: streaming(a, b), what="re-cloned node streams")
    wait_until(lambda: _keys(a) == {"new"}, what="re-cloned data")


def test_lost_slot_reported_and_recloned(pg_factory):
    cfg = PostgresConfig(max_slot_wal_keep_size="48MB",
                         parameters={"min_wal_size": "32MB", "max_wal_size": "64MB", "wal_keep_size": "0"})
    a = pg_factory.primary("a", cfg)
    _table(a)
    b = pg_factory.standby("b", a, cfg)
    wait_until(lambda: streaming(b, a), what="b streaming")
    b.stop()
    for i in range(8):    # 8 segments of 16MB: past the 48MB a slot may retain
        sql(a, "INSERT INTO kv SELECT %s || g, repeat('x', 100) FROM generate_series(1, 100) g", (f"r{i}-",))
        sql(a, "SELECT pg_switch_wal()")
    sql(a, "CHECKPOINT")
    wait_until(lambda: [s.lost for s in a.status().slots] == [True], what="slot lost on primary")
    b.start()
    wait_until(lambda: b.status().needs_reclone, what="standby reports needs_reclone")
    with pytest.raises(NeedsReclone):
        b.follow(upstream_of(a), 0)
    assert b.rejoin(upstream_of(a), 0) is RejoinMethod.RECLONED
    wait_until(lambda: streaming(b, a), what="re-cloned standby streams")
    assert not b.status().needs_reclone
    assert [s.lost for s in a.status().slots] == [False]


def test_demote_and_fence_stop(pg_factory):
    a = pg_factory.primary("a", PostgresConfig(fence_method="stop"))
    a.fence("lease lost")
    st = a.status()
    assert st.role is Role.STOPPED and st.fence_reason == "stop: lease lost"
    a.unfence()
    assert a.status().role is Role.PRIMARY and not a.status().fenced
    a.demote(1)
    assert a.status().role is Role.STANDBY and a.status().upstream == ""
    a.demote(1)                                          # idempotent
    assert a.status().role is Role.STANDBY


def test_start_fenced_primary_is_read_only(pg_factory):
    a = pg_factory.primary("a")
    a.stop()
    a.start_fenced = True
    a.start()
    assert a.status().fenced and a.status().role is Role.PRIMARY
    with pytest.raises(Exception, match="read-only"):
        sql(a, "CREATE TABLE nope (x int)")


def test_missing_traverse_permission_is_a_clear_error(pg_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (the engine drops to the postgres user)")
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres import PostgresEngine
    private = pathlib.Path(tmp_path) / "p"
    private.mkdir()
    os.chmod(tmp_path, 0o700)
    eng = PostgresEngine("x", str(private / "node"), "127.0.0.1:1")
    with pytest.raises(EngineError, match="cannot traverse"):
        eng.bootstrap()


def test_fenced_standby_keeps_serving_reads_and_promotes_read_only(pg_factory):
    a = pg_factory.primary("a", PostgresConfig(fence_method="stop"))
    _table(a)
    b = pg_factory.standby("b", a, PostgresConfig(fence_method="stop"))
    pid = b.postmaster_pid
    b.fence("taking leadership")
    assert b.postmaster_pid == pid and b.status().role is Role.STANDBY and b.status().fenced
    a.stop()
    b.promote(1)
    with pytest.raises(Exception, match="read-only"):
        sql(b, "INSERT INTO kv VALUES ('x', '1')")
    b.unfence()
    sql(b, "INSERT INTO kv VALUES ('x', '1')")


def test_diverged_standby_flags_needs_reclone_then_rejoins(pg_factory):
    a = pg_factory.primary("a")
    _table(a)
    b = pg_factory.standby("b", a)
    b.promote(1)
    sql(a, "INSERT INTO kv SELECT 'lost' || g, 'x' FROM generate_series(1, 1000) g")   # a diverges
    a.demote(1)
    a.follow(upstream_of(b), 1)          # cannot work: a's history forked off b's timeline
    wait_until(lambda: a.status().needs_reclone, what="divergence detected")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.REWOUND
    wait_until(lambda: streaming(a, b), what="rewound node streams")
    assert not a.status().needs_reclone


def test_interrupted_bootstrap_is_not_a_database_and_is_redone(pg_factory):
    a = pg_factory("a")
    a.bootstrap()
    a.dir.save_state(a.dir.load_state().with_(incomplete=True))   # as if the agent died mid-way
    again = pg_factory("a")                                        # a new agent process, same dir
    assert not again.is_initialized()
    with pytest.raises(NeedsReclone):
        again.start()
    again.bootstrap()
    again.start()
    assert again.status().role is Role.PRIMARY and not again.status().needs_reclone
