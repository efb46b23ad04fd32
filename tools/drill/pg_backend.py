"""The drill workload's PostgreSQL writer.

``PgWriter("host:port")`` writes unique keys into ``walrus_drill(k text
primary key, v text)`` (created on first use) as user ``postgres``, database
``postgres``, in autocommit mode, under short connect and statement timeouts.
``write`` returns (the timeline that answered) only after PostgreSQL
acknowledged the commit (at the server's ``synchronous_commit`` level) and
raises on anything else; the
connection is dropped after any error and reopened by the next call.
"""
from __future__ import annotations

import psycopg

from walrus_ha.common.config import parse_address


class PgWriter:
    """One connection to the PostgreSQL at ``address`` (``host:port``)."""

    def __init__(self, address: str, *, user: str = "postgres", dbname: str = "postgres",
                 connect_timeout_s: int = 2, statement_timeout_ms: int = 2000, password: str = ""):
        host, port = parse_address(address)
        self.address = address
        self._conninfo = psycopg.conninfo.make_conninfo(
            host=host, port=port, user=user, dbname=dbname, connect_timeout=connect_timeout_s,
            application_name="walrus-drill", options=f"-c statement_timeout={statement_timeout_ms}",
            **({"password": password} if password else {}))
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._conn

    def _run(self, query: str, params: tuple = ()) -> list[tuple]:
        try:
            cur = self._connection().execute(query, params)
            return cur.fetchall() if cur.description else []
        except psycopg.Error:
            self.close()
            raise

    # The timeline the server writes on, from the name of its current WAL file
    # (a primary's insert timeline): a new one per promotion, so it plays the
    # part of the leader term for the drill checker (split brain).
    INSERT = ("INSERT INTO walrus_drill (k, v) VALUES (%s, %s) "
              "RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")

    def write(self, key: str, value: str) -> int:
        """INSERT ``key``; returns the timeline that acknowledged it. Raises
        (psycopg.Error) unless the commit was acknowledged."""
        try:
            rows = self._run(self.INSERT, (key, value))
        except psycopg.errors.UndefinedTable:
            self._run("CREATE TABLE IF NOT EXISTS walrus_drill (k text PRIMARY KEY, v text)")
            rows = self._run(self.INSERT, (key, value))
        return int(rows[0][0]) if rows else 0

    def read_values(self, keys: list[str] | tuple[str, ...]) -> dict[str, str]:
        """key -> value of the ``keys`` present (empty when the table does not exist yet)."""
        try:
            rows = self._run("SELECT k, v FROM walrus_drill WHERE k = ANY(%s)", (list(keys),))
        except psycopg.errors.UndefinedTable:
            return {}
        return {r[0]: r[1] for r in rows}

    def read_all(self, keys: list[str] | tuple[str, ...]) -> set[str]:
        """The subset of ``keys`` present."""
        return set(self.read_values(keys))

    def exists(self, key: str) -> bool:
        """True when ``key`` is present."""
        return key in self.read_values([key])

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


PgBackend = PgWriter
