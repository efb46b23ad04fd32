"""Base backups, pg_rewind and replication slots: the cross-server steps.

Each function runs one PostgreSQL program (as the OS user) or a few SQL
statements against the *upstream*, and maps every failure to ``EngineError``.
"""
from __future__ import annotations

import enum
import logging
import re

from walrus_ha.common.config import parse_address
from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import parse_lsn
from walrus_ha.node.engine.base import StandbyInfo, Upstream
from walrus_ha.node.engine.postgres import sql
from walrus_ha.node.engine.postgres.binaries import Binaries
from walrus_ha.node.engine.postgres.conf import conninfo, slot_name
from walrus_ha.node.engine.postgres.process import OsUser, run, wait_for
from walrus_ha.node.engine.postgres.rejoinplan import SourceSizes

log = logging.getLogger(__name__)


def upstream_dsn(upstream: Upstream, user: str, dbname: str, *, connect_timeout: int = 3,
                 passfile: str = "") -> str:
    """Superuser conninfo for SQL on the upstream (slots, CHECKPOINT, pg_rewind);
    ``passfile``: the libpq password file when members authenticate (auth.py)."""
    host, port = parse_address(upstream.address)
    return sql.dsn(host, port, user, dbname, connect_timeout=connect_timeout, passfile=passfile)


def primary_conninfo(upstream: Upstream, replication_user: str, application_name: str, passfile: str = "") -> str:
    """``primary_conninfo`` for a standby of ``upstream``; application_name = member name,
    which is what synchronous_standby_names and pg_stat_replication match on."""
    host, port = parse_address(upstream.address)
    return conninfo(host=host, port=port, user=replication_user, application_name=application_name,
                    connect_timeout=3, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                    passfile=passfile)


def ensure_slot(upstream_conninfo: str, member: str, *, recreate_lost: bool = False) -> bool:
    """Create ``member``'s physical slot on the upstream if absent (reserving WAL now).

    Returns True if the existing slot is lost (its WAL is gone); with
    ``recreate_lost`` (before a fresh base backup) a lost, inactive slot is
    dropped and created again instead.
    """
    name = slot_name(member)
    rows = sql.execute_once(upstream_conninfo,
                            "SELECT wal_status, active FROM pg_replication_slots WHERE slot_name = %s", (name,))
    if rows and rows[0][0] == "lost" and recreate_lost:
        _drop_slot(upstream_conninfo, name)
    elif rows:
        return rows[0][0] == "lost"
    sql.execute_once(upstream_conninfo,
                     "SELECT pg_create_physical_replication_slot(%s, true) "
                     "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (name, name))
    log_event(log, "slot.create", slot=name, on="upstream")
    return False


def _drop_slot(upstream_conninfo: str, name: str) -> None:
    """Drop a slot, first ending a walsender still holding it (it exits soon
    after its standby stops, but not instantly)."""
    def dropped() -> bool:
        sql.execute_once(upstream_conninfo, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                                            " WHERE slot_name = %s AND active_pid IS NOT NULL", (name,))
        try:
            sql.execute_once(upstream_conninfo, "SELECT pg_drop_replication_slot(%s)", (name,))
            return True
        except EngineError:
            return False
    if not wait_for(dropped, 10.0, 0.1):
        raise EngineError(f"cannot drop lost slot {name} on the upstream (still in use)")
    log_event(log, "slot.drop_lost", slot=name, on="upstream")


def base_backup(bins: Binaries, user: OsUser, pgdata: str, upstream: Upstream, replication_user: str,
                application_name: str, timeout: float, passfile: str = "") -> None:
    """``pg_basebackup -X stream -c fast`` of ``upstream`` into the empty ``pgdata``."""
    host, port = parse_address(upstream.address)
    run([bins.path("pg_basebackup"), "-D", pgdata, "-X", "stream", "-c", "fast", "--no-password",
         "-d", conninfo(host=host, port=port, user=replication_user, application_name=application_name,
                        connect_timeout=5, passfile=passfile)],
        user, timeout=timeout, what=f"clone from {upstream}")
    log_event(log, "clone.done", upstream=upstream, pgdata=pgdata)


def rewind(bins: Binaries, user: OsUser, pgdata: str, source_conninfo: str, timeout: float) -> tuple[bool, int | None]:
    """``pg_rewind`` the stopped target from the source server (the caller ran
    ``CHECKPOINT`` on the source first, so its control file shows the new
    timeline; PostgreSQL 15 does not checkpoint on promote).

    Returns (False when pg_rewind found nothing to rewind, the LSN where the
    servers diverged as pg_rewind printed it or None). Raises EngineError.
    """
    argv = [bins.path("pg_rewind"), "--target-pgdata", pgdata, "--source-server", source_conninfo]
    for attempt in range(3):
        try:
            out = run(argv, user, timeout=timeout, what="pg_rewind")
            break
        except EngineError as exc:
            # A child forked from the threaded agent occasionally dies of a signal
            # before exec ("exited -11: " with no output): pg_rewind changed nothing
            # yet (it prints the divergence point before touching the target), so
            # run it again rather than falling back to a full re-clone.
            if attempt == 2 or not re.search(r"exited -\d+: $", str(exc)):
                raise
            log_event(log, "rewind.retry", pgdata=pgdata, error=exc, level=logging.WARNING)
    rewound = "no rewind required" not in out
    log_event(log, "rewind.done", pgdata=pgdata, rewound=rewound)
    return rewound, diverged_at(out)


_SIZES = ("SELECT (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()),"
          " (SELECT sum(pg_database_size(oid)) FROM pg_database),"
          " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')")


def source_sizes(upstream_conninfo: str) -> SourceSizes:
    """The upstream's ``pg_wal``, databases and WAL segment size in bytes
    (superuser SQL), for ``rejoinplan.rewind_or_clone``. Raises EngineError."""
    wal, data, segment = sql.execute_once(upstream_conninfo, _SIZES)[0]
    return SourceSizes(int(wal), int(data or 0), int(segment or 0))


def diverged_at(out: str) -> int | None:
    """The LSN of pg_rewind's "servers diverged at WAL location X/Y" line, or None."""
    m = re.search(r"servers diverged at WAL location ([0-9A-Fa-f]+/[0-9A-Fa-f]+)", out)
    return parse_lsn(m.group(1)) if m else None


class SyncRelease(enum.Enum):
    """Whether a reply from a standby named in a new set can release waiting commits."""
    NOW = "now"        # a named standby's walsender already counts it (sync / potential / quorum)
    WAIT = "wait"      # named standbys stream, but their walsenders have not taken up the set yet
    NEVER = "never"    # no named standby streams (e.g. the placeholder set): nothing to release


def sync_release(standbys: tuple[StandbyInfo, ...], names: tuple[str, ...]) -> SyncRelease:
    """``SyncRelease`` for the primary's ``standbys`` (pg_stat_replication) and the set's ``names``."""
    named = [s for s in standbys if s.name in names]
    if not named:
        return SyncRelease.NEVER
    return SyncRelease.NOW if any(s.sync_state != "async" for s in named) else SyncRelease.WAIT
