"""PostgreSQL engine on one shared primary + standby: bootstrap, clone,
streaming, status, synchronous replication, slots, fencing, the lease fencer."""
from __future__ import annotations

import os
import pwd
import threading
import time

import psycopg
import pytest

from pgtest_util import sql, streaming, upstream_of, wait_until
from walrus_ha.node.engine.base import Role, SyncMethod, SyncSpec
from walrus_ha.node.engine.postgres import fencer

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def test_bootstrap_and_clone_stream_writes(pg_pair):
    a, b = pg_pair
    st = a.status()
    assert st.role is Role.PRIMARY and st.timeline == 1 and st.engine == "postgres"
    sql(a, "INSERT INTO kv VALUES ('stream', '1') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v")
    wait_until(lambda: sql(b, "SELECT v FROM kv WHERE k = 'stream'") == [("1",)], what="row on standby")
    sb = b.status()
    assert sb.role is Role.STANDBY and sb.streaming and sb.upstream == f"a@{a.data_address}"
    assert sb.flush_lsn > 0 and sb.replay_lsn > 0 and sb.timeline == 1
    # The primary sees the standby by its member name (application_name).
    wait_until(lambda: [s.name for s in a.status().standbys] == ["b-1"], what="pg_stat_replication row")
    info = a.status().standbys[0]
    assert info.flush_lsn > 0 and info.sync_state == "async"
    assert [s.name for s in a.status().slots] == ["b_1"]


def test_data_dir_owned_by_os_user_and_private(pg_pair):
    a, _ = pg_pair
    st = os.stat(a.dir.pgdata)
    assert oct(st.st_mode & 0o777) == "0o700"
    if os.geteuid() == 0:
        assert st.st_uid == pwd.getpwnam("postgres").pw_uid
        with open(f"/proc/{a.postmaster_pid}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        assert int(uid_line.split()[1]) == pwd.getpwnam("postgres").pw_uid


def _sync_state(a):
    return {s.name: s.sync_state for s in a.status().standbys}


def test_sync_commit_blocks_without_sync_standby(pg_pair):
    a, b = pg_pair
    a.set_sync_standbys(SyncSpec(SyncMethod.FIRST, 1, ("b-1",)))
    try:
        assert a.status().sync_standbys == 'FIRST 1 ("b-1")'
        wait_until(lambda: _sync_state(a).get("b-1") == "sync", what="b-1 sync")
        b.stop()
        done = threading.Event()
        errors: list[Exception] = []

        def commit():
            try:
                sql(a, "INSERT INTO kv VALUES ('sync', 'x') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            done.set()

        t = threading.Thread(target=commit, daemon=True)
        t.start()
        wait_until(lambda: sql(a, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0] == 1,
                   what="commit waiting for the sync standby")
        assert not done.is_set()
        b.start()
        assert done.wait(60), "commit did not proceed once the sync standby was back"
        assert not errors
        assert sql(b, "SELECT v FROM kv WHERE k = 'sync'") == [("x",)]
    finally:
        b.start()
        a.set_sync_standbys(SyncSpec())
    assert a.status().sync_standbys == ""
    wait_until(lambda: _sync_state(a).get("b-1") == "async", what="b-1 async again")


def test_any_quorum_rendering_applied(pg_pair):
    a, _ = pg_pair
    a.set_sync_standbys(SyncSpec(SyncMethod.ANY, 1, ("b-1", 'odd"name')))
    try:
        wait_until(lambda: sql(a, "SHOW synchronous_standby_names") == [('ANY 1 ("b-1", "odd""name")',)],
                   what="reloaded setting")   # a reload is asynchronous, as pg_reload_conf() is
        wait_until(lambda: _sync_state(a).get("b-1") == "quorum", what="quorum state")
    finally:
        a.set_sync_standbys(SyncSpec())


def test_ensure_slots_creates_and_drops(pg_pair):
    a, _ = pg_pair
    names = {s.name for s in a.ensure_slots(["a", "b-1", "c"])}
    assert names == {"b_1", "c"}        # no slot for the primary itself
    names = {s.name for s in a.ensure_slots(["b-1"], drop_others=True)}
    assert names == {"b_1"}


def test_fence_read_only_refuses_writes_and_kills_sessions(pg_pair):
    a, b = pg_pair
    host, port = a.data_address.split(":")
    conn = psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", autocommit=True)
    try:
        a.fence("test")
        st = a.status()
        assert st.fenced and st.fence_reason == "read_only: test" and st.role is Role.PRIMARY
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            sql(a, "INSERT INTO kv VALUES ('fenced', '1')")
        with pytest.raises(psycopg.OperationalError):     # the old session was terminated
            conn.execute("INSERT INTO kv VALUES ('fenced2', '1')")
    finally:
        conn.close()
        a.unfence()
    assert not a.status().fenced
    sql(a, "INSERT INTO kv VALUES ('unfenced', '1') ON CONFLICT DO NOTHING")
    assert streaming(b, a)


def test_lease_deadline_passing_fences(pg_pair):
    """The fencer process stops the unfenced primary at the deadline; the engine
    restarts it fenced (read-only); a new deadline + unfence makes it writable."""
    a, b = pg_pair
    pid = a.postmaster_pid
    try:
        a.set_lease_deadline(time.monotonic() + 3600)   # far away: stays writable
        sql(a, "INSERT INTO kv VALUES ('lease-ok', '1') ON CONFLICT DO NOTHING")
        a.set_lease_deadline(time.monotonic() + 0.2)
        wait_until(lambda: a.status().fenced, what="fencer fence")
        assert a.status().fence_reason == fencer.REASON
        wait_until(lambda: a.postmaster_pid not in (None, pid), what="restart")
        wait_until(lambda: _refuses_read_only(a), what="restarted fenced (read-only)")
        assert a.status().role is Role.PRIMARY
        a.set_lease_deadline(time.monotonic() + 3600)
    finally:
        a.unfence()
        a.set_lease_deadline(None)
    assert not a.status().fenced
    sql(a, "INSERT INTO kv VALUES ('lease-again', '1') ON CONFLICT DO NOTHING")
    wait_until(lambda: streaming(b, a), what="standby streaming again")


def _refuses_read_only(eng) -> bool:
    """True once a write fails as read-only; other errors (starting up) propagate to wait_until."""
    try:
        sql(eng, "INSERT INTO kv VALUES ('lease-late', '1')")
    except psycopg.errors.ReadOnlySqlTransaction:
        return True
    raise AssertionError("a write was acknowledged after the deadline")


def test_passing_deadline_spares_fenced_primary_and_standby(pg_pair):
    """Already read-only (the agent fenced first) or a standby: nothing to stop."""
    a, b = pg_pair
    pids = (a.postmaster_pid, b.postmaster_pid)
    try:
        a.fence("agent fenced first")
        for eng in (a, b):
            eng.set_lease_deadline(time.monotonic() - 1)
        eng_fencers = [eng._fencer for eng in (a, b)]
        # The fencers act on the passed deadline at once; give them a moment, then check.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert not any(f.fired() for f in eng_fencers)
            time.sleep(0.05)
        assert (a.postmaster_pid, b.postmaster_pid) == pids
        assert a.status().fence_reason == "read_only: agent fenced first"
    finally:
        for eng in (a, b):
            eng.set_lease_deadline(None)
        a.unfence()
    sql(a, "INSERT INTO kv VALUES ('spared', '1') ON CONFLICT DO NOTHING")


def test_follow_is_idempotent_reload(pg_pair):
    a, b = pg_pair
    pid = b.postmaster_pid
    b.follow(upstream_of(a), 0)
    b.follow(upstream_of(a), 0)
    assert b.postmaster_pid == pid                       # no restart
    wait_until(lambda: streaming(b, a), what="b streaming")


def test_cluster_parameters_reload_live_or_wait_for_a_restart(pg_pair):
    """``apply_parameters`` (the cluster config's ``postgres.parameters``):
    a reloadable setting reaches ``SHOW`` on both members, a postmaster-only
    one is reported pending and keeps its running value."""
    a, b = pg_pair
    try:
        for eng in (a, b):
            assert eng.apply_parameters({"work_mem": "7MB", "shared_buffers": "40MB"}) == ("shared_buffers",)
            assert eng.pending_restart == ("shared_buffers",)
        wait_until(lambda: all(sql(e, "SHOW work_mem") == [("7MB",)] for e in (a, b)), what="work_mem reloaded")
        assert all(sql(e, "SHOW shared_buffers") == [("32MB",)] for e in (a, b))
    finally:
        for eng in (a, b):
            assert eng.apply_parameters({}) == ()
    wait_until(lambda: all(sql(e, "SHOW work_mem") == [("4MB",)] for e in (a, b)), what="work_mem restored")
