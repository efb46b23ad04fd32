"""The drill's PostgreSQL writer against a real primary and standby."""
from __future__ import annotations

import psycopg
import pytest

from pgtest_util import free_port, wait_until
from walrus_ha.tools.drill.pg_backend import PgWriter

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def test_writer_writes_reads_and_raises(pg_factory):
    a = pg_factory.primary("a")
    b = pg_factory.standby("b", a)
    w = PgWriter(a.data_address)
    r = PgWriter(b.data_address)
    try:
        assert r.read_all(["k1"]) == set()                 # no table yet
        w.write("k1", "v1")
        w.write("k2", "v2")
        with pytest.raises(psycopg.errors.UniqueViolation):
            w.write("k1", "again")
        w.write("k3", "v3")                                # reconnects after the error
        assert w.read_all(["k1", "k3", "nope"]) == {"k1", "k3"}
        wait_until(lambda: r.exists("k3"), what="k3 on the standby")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            r.write("k4", "v4")                            # a standby never acknowledges
        a.fence("drill")
        with pytest.raises(psycopg.Error):
            w.write("k5", "v5")
    finally:
        w.close()
        r.close()
    with pytest.raises(psycopg.OperationalError):
        PgWriter(f"127.0.0.1:{free_port()}").write("k", "v")
