"""A commit waiting for synchronous replication is released as soon as the
set naming an already caught-up standby is applied, not at the standby's next
periodic status reply (``TransitionsMixin._release_waiters``).

The standby's periodic replies are switched off for the test (``QUIET``)
and the set is applied only after the last WAL PostgreSQL writes on its own,
so without the release the commit would wait until the test gives up: it
cannot pass by luck of timing."""
from __future__ import annotations

import threading

import pytest

from pgtest_util import sql, wait_until
from walrus_ha.node.config import PostgresConfig
from walrus_ha.node.engine.base import StandbyInfo, SyncMethod, SyncSpec
from walrus_ha.node.engine.postgres import replication

# No periodic reply from the standby (status interval, receiver-timeout
# ping), no keepalive asking for one, no autovacuum writing WAL on its own.
QUIET = {"wal_receiver_status_interval": "2147483s", "wal_receiver_timeout": "0", "wal_sender_timeout": "0",
         "autovacuum": "off"}


NOW, WAIT, NEVER = replication.SyncRelease.NOW, replication.SyncRelease.WAIT, replication.SyncRelease.NEVER


@pytest.mark.parametrize("rows,names,expected", [
    ((), ("b",), NEVER),
    ((StandbyInfo("c", sync_state="sync"),), ("walrus_pending_sync_set",), NEVER),   # a promotion's placeholder
    ((StandbyInfo("b", sync_state="async"),), ("b",), WAIT),
    ((StandbyInfo("b", sync_state="sync"),), ("b",), NOW),
    ((StandbyInfo("b", sync_state="potential"), StandbyInfo("c", sync_state="async")), ("b", "c"), NOW),
    ((StandbyInfo("b", sync_state="quorum"),), ("b",), NOW),
])
def test_sync_release(rows, names, expected):
    assert replication.sync_release(rows, names) is expected


@pytest.mark.postgres
@pytest.mark.integration
def test_waiting_commit_released_when_set_applied(pg_factory):
    a = pg_factory.primary("a", PostgresConfig(parameters=dict(QUIET)))
    b = pg_factory.standby("b", a, PostgresConfig(parameters=dict(QUIET)))
    sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    wait_until(lambda: [s.name for s in a.status().standbys] == ["b"], what="b streams")
    # A new primary's placeholder set: no standby can satisfy it, commits wait.
    a.set_sync_standbys(SyncSpec(SyncMethod.FIRST, 1, ("nobody",)))
    wait_until(lambda: sql(a, "SHOW synchronous_standby_names") == [('FIRST 1 ("nobody")',)], what="reload")
    done, errors = threading.Event(), []

    def commit():
        try:
            sql(a, "INSERT INTO kv VALUES ('k', 'v')", timeout=60)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        done.set()
    threading.Thread(target=commit, daemon=True).start()
    wait_until(lambda: sql(a, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")[0][0] == 1,
               what="the commit waits for a synchronous standby")
    # The one WAL record PostgreSQL writes on its own after a commit is the
    # background writer's running-xacts snapshot (within 15 s; it writes no
    # other until new important WAL): wait until b flushed and reported it too,
    # so from here nothing but the release under test can make b reply.
    committed = sql(a, "SELECT pg_current_wal_flush_lsn()::text")[0][0]
    wait_until(lambda: sql(a, "SELECT pg_current_wal_flush_lsn() > %s::pg_lsn", (committed,))[0][0],
               what="the background writer's snapshot after the commit")
    flushed = sql(a, "SELECT pg_current_wal_flush_lsn()::text")[0][0]
    wait_until(lambda: sql(a, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'b'"
                              " AND flush_lsn >= %s::pg_lsn", (flushed,))[0][0] == 1,
               what="b flushed the commit and said so")
    assert not done.is_set()
    a.set_sync_standbys(SyncSpec(SyncMethod.FIRST, 1, ("b",)))
    try:
        assert done.wait(60), "the waiting commit was not released when the set naming b was applied"
        assert not errors
        assert sql(b, "SELECT v FROM kv WHERE k = 'k'") == [("v",)]
    finally:
        a.set_sync_standbys(SyncSpec())
