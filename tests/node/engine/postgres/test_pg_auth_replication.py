"""Replication between real PostgreSQL servers with password files
(scram-sha-256): the members listen on every address and reach each other
on this host's non-loopback address, which pg_hba does not trust, so the
clone (superuser slot + pg_basebackup), streaming (primary_conninfo) and a
write all authenticate through the passfile; a client without the password
is refused there. Skipped without PostgreSQL or a non-loopback address."""
from __future__ import annotations

import os
import socket

import psycopg
import pytest

from pgtest_util import streaming, wait_until
from walrus_ha.node.config import PostgresConfig
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.postgres import PostgresEngine
from walrus_ha.tools.etcd_server import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


def _outbound_address() -> str | None:
    """This host's address towards the default route (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.254", 9))
        address = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if address.startswith("127.") else address


def _sql(engine: PostgresEngine, query: str) -> list[tuple]:
    """One statement on ``engine`` at its advertised address, with the superuser's password."""
    host, port = engine.data_address.rsplit(":", 1)
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", password="su-pw:1",
                         connect_timeout=5, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def _engine(pg_factory, name: str, host: str, config: PostgresConfig) -> PostgresEngine:
    port = free_port()
    eng = PostgresEngine(name, os.path.join(pg_factory.base, name), f"0.0.0.0:{port}", config,
                         data_address=f"{host}:{port}")
    pg_factory.engines.append(eng)
    return eng


def test_standby_clones_and_streams_with_scram_only(pg_factory):
    host = _outbound_address()
    if host is None:
        pytest.skip("no non-loopback IPv4 address to connect through")
    secrets = os.path.join(pg_factory.base, "secrets")
    os.mkdir(secrets)
    for name, value in (("su", "su-pw:1"), ("repl", "repl-pw")):
        with open(os.path.join(secrets, name), "w") as f:
            f.write(value + "\n")
    config = PostgresConfig(superuser_password_file=os.path.join(secrets, "su"),
                            replication_password_file=os.path.join(secrets, "repl"))
    a = _engine(pg_factory, "a", host, config)
    a.bootstrap()
    a.start()
    _sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    b = _engine(pg_factory, "b", host, config)
    b.clone(Upstream("a", a.data_address))
    b.start()
    wait_until(lambda: streaming(b, a), what="b streams from a over scram")
    _sql(a, "INSERT INTO kv VALUES ('k', 'v')")
    wait_until(lambda: _sql(b, "SELECT v FROM kv WHERE k = 'k'") == [("v",)], what="the write reaches b")

    passfile = b.dir.passfile.stat()
    assert passfile.st_mode & 0o777 == 0o600 and passfile.st_uid == b.user.uid
    assert "repl-pw" not in (b.dir.pgdata / "walrus.dynamic.conf").read_text()
    port = int(a.data_address.rsplit(":", 1)[1])
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", connect_timeout=5,
                        passfile="/dev/null").close()
    assert _sql(a, "SELECT count(*) FROM kv") == [(1,)]
