"""Status and control queries against a running PostgreSQL (psycopg 3).

The one rule: psycopg errors never leave this module; they become
``EngineError`` (or ``Unreachable`` when the server cannot be reached). One
connection is kept open for status and reopened on failure; every statement
runs under a short ``statement_timeout``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import psycopg

from walrus_ha.common.errors import EngineError
from walrus_ha.common.lsn import parse_lsn
from walrus_ha.node.engine.base import SlotInfo, StandbyInfo

APP_NAME = "walrus-engine"
# An empty transaction that writes a commit record and flushes it locally,
# never waiting for a synchronous standby (TransitionsMixin._release_waiters).
NUDGE_STANDBYS = "SELECT set_config('synchronous_commit', 'local', true), txid_current()"


class Unreachable(EngineError):
    """The server does not accept connections (stopped, starting, crashed)."""


def dsn(host: str, port: int, user: str, dbname: str, *, connect_timeout: int = 3,
        statement_timeout_ms: int = 5000, app: str = APP_NAME, passfile: str = "") -> str:
    """A libpq connection string for the engine's own connections (``passfile``:
    a libpq password file, for another member's server)."""
    quoted = "'" + passfile.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return (f"host={host} port={port} user={user} dbname={dbname} connect_timeout={connect_timeout} "
            f"application_name={app} options='-c statement_timeout={statement_timeout_ms}'"
            + (f" passfile={quoted}" if passfile else ""))


def _lsn(text: str | None) -> int:
    return parse_lsn(text) if text else 0


def _secs(iv) -> float:
    return iv.total_seconds() if iv is not None else 0.0


@dataclass(frozen=True)
class PrimaryRow:
    timeline: int
    write_lsn: int
    flush_lsn: int
    read_only: bool


@dataclass(frozen=True)
class StandbyRow:
    receive_lsn: int
    replay_lsn: int
    timeline: int
    streaming: bool
    upstream: str
    wal_status: str


class Session:
    """One kept-open autocommit connection to a local server."""

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run ``sql``; return all rows (``[]`` for statements without rows)."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.conninfo, autocommit=True)
                cur = self._conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                self._drop()
                raise Unreachable(f"PostgreSQL unreachable: {str(exc).strip()}") from None
            except psycopg.Error as exc:
                if self._conn is not None and self._conn.broken:
                    self._drop()
                raise EngineError(f"query failed: {str(exc).strip()}") from None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def in_recovery(self) -> bool:
        return bool(self.query("SELECT pg_is_in_recovery()")[0][0])

    def primary(self) -> PrimaryRow:
        row = self.query(
            "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text,"
            " ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,"
            " current_setting('default_transaction_read_only') = 'on'")[0]
        return PrimaryRow(timeline=row[2], write_lsn=_lsn(row[0]), flush_lsn=_lsn(row[1]), read_only=row[3])

    def standbys(self) -> tuple[StandbyInfo, ...]:
        rows = self.query(
            "SELECT application_name, sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,"
            " pg_current_wal_lsn() - sent_lsn, pg_current_wal_lsn() - flush_lsn,"
            " pg_current_wal_lsn() - replay_lsn, write_lag, flush_lag, replay_lag, sync_state"
            " FROM pg_stat_replication WHERE application_name <> '' ORDER BY application_name")
        return tuple(StandbyInfo(
            name=r[0], sent_lsn=_lsn(r[1]), write_lsn=_lsn(r[2]), flush_lsn=_lsn(r[3]), replay_lsn=_lsn(r[4]),
            send_lag_bytes=int(r[5] or 0), flush_lag_bytes=int(r[6] or 0), replay_lag_bytes=int(r[7] or 0),
            write_lag_s=_secs(r[8]), flush_lag_s=_secs(r[9]), replay_lag_s=_secs(r[10]),
            sync_state=r[11] or "async") for r in rows)

    def slots(self) -> tuple[SlotInfo, ...]:
        rows = self.query(
            "SELECT slot_name, restart_lsn::text, active, wal_status,"
            " CASE WHEN restart_lsn IS NULL THEN 0 ELSE"
            "  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)"
            "  - restart_lsn END"
            " FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name")
        return tuple(SlotInfo(name=r[0], restart_lsn=_lsn(r[1]), active=bool(r[2]),
                              lost=(r[3] == "lost"), retained_bytes=max(0, int(r[4] or 0))) for r in rows)

    def standby(self) -> StandbyRow:
        row = self.query(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
            " GREATEST((SELECT timeline_id FROM pg_control_checkpoint()),"
            "          (SELECT min_recovery_end_timeline FROM pg_control_recovery())),"
            " r.status, r.received_tli, r.sender_host, r.sender_port"
            " FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver r ON true")[0]
        streaming = row[3] == "streaming"
        upstream = f"{row[5]}:{row[6]}" if row[5] else ""
        timeline = max(int(row[2] or 0), int(row[4] or 0))
        return StandbyRow(receive_lsn=_lsn(row[0]), replay_lsn=_lsn(row[1]), timeline=timeline,
                          streaming=streaming, upstream=upstream, wal_status=row[3] or "")


def execute_once(conninfo: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Open a connection, run one statement, close. Errors as in ``Session``."""
    s = Session(conninfo)
    try:
        return s.query(sql, params)
    finally:
        s.close()
