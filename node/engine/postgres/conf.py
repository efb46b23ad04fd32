"""Render PostgreSQL configuration files (pure: strings in, strings out).

Files walrus owns inside the data directory:

* ``postgresql.conf``: rewritten on every start from the node config (listen
  address, port, socket dir, replication settings, the agent's
  ``parameters``); ends by including ``walrus.dynamic.conf``.
* ``walrus.dynamic.conf``: what changes at run time with a reload, never a
  restart: ``primary_conninfo``, ``primary_slot_name``,
  ``synchronous_standby_names``, ``default_transaction_read_only`` (fence).
* ``pg_hba.conf``: local and 127.0.0.1/::1 trust, including replication,
  then the node config's ``postgres.hba`` rows, then, with password files,
  scram-sha-256 from any host (``auth.py``).
* ``standby.signal``: present on a standby.

``postgresql.auto.conf`` (ALTER SYSTEM) is emptied, so nothing overrides these.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from walrus_ha.node.engine.base import SyncSpec

DYNAMIC_CONF = "walrus.dynamic.conf"

BASE_SETTINGS: dict[str, str] = {
    "wal_level": "replica",
    "wal_log_hints": "on",
    "hot_standby": "on",
    "max_wal_senders": "16",
    "max_replication_slots": "16",
    "max_connections": "60",
    "shared_buffers": "32MB",
    # Kept so pg_rewind finds the old primary's WAL back to the last common
    # checkpoint (its own shutdown checkpoint would otherwise recycle it).
    "wal_keep_size": "128MB",
    "wal_receiver_status_interval": "1s",
    "wal_retrieve_retry_interval": "1s",
    "wal_sender_timeout": "10s",
    "wal_receiver_timeout": "10s",
    # Crash recovery (a killed postmaster restarted in place, a fencer's stop)
    # first syncs the data directory: one syncfs() instead of an fsync per
    # file (seconds on a busy host).
    "recovery_init_sync_method": "syncfs",
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] '",
    "log_min_messages": "warning",
    "dynamic_shared_memory_type": "posix",
    "datestyle": "'iso, mdy'",
    "lc_messages": "'C'",
}

_SLOT_RE = re.compile(r"[^a-z0-9_]")


def slot_name(member: str) -> str:
    """The physical slot of ``member``: lower case, other characters -> ``_``.

    PostgreSQL slot names allow only ``[a-z0-9_]`` (at most 63 characters).
    """
    return _SLOT_RE.sub("_", member.lower())[:63]


def quote_value(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A double-quoted identifier (for synchronous_standby_names)."""
    return '"' + name.replace('"', '""') + '"'


def conninfo_value(value: str) -> str:
    """A libpq conninfo value, quoted when needed."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**params: object) -> str:
    """``key=value ...`` libpq connection string (empty values dropped)."""
    return " ".join(f"{k}={conninfo_value(str(v))}" for k, v in params.items() if v not in ("", None))


def render_sync(spec: SyncSpec) -> str:
    """``synchronous_standby_names`` for ``spec``: ``FIRST 1 ("b", "c")``; "" = async."""
    if not spec.enabled:
        return ""
    return f"{spec.method.name} {spec.num} ({', '.join(quote_ident(n) for n in spec.names)})"


@dataclass(frozen=True)
class StaticConf:
    """Inputs of ``postgresql.conf``."""
    listen_host: str
    port: int
    socket_dir: str
    max_slot_wal_keep_size: str
    parameters: dict[str, str] = field(default_factory=dict)


def render_postgresql_conf(c: StaticConf) -> str:
    """The whole ``postgresql.conf``; ``parameters`` override the base settings."""
    settings = dict(BASE_SETTINGS)
    settings.update({
        "listen_addresses": quote_value(c.listen_host),
        "port": str(c.port),
        "unix_socket_directories": quote_value(c.socket_dir),
        "max_slot_wal_keep_size": quote_value(c.max_slot_wal_keep_size),
    })
    for key, value in c.parameters.items():
        settings[key] = _literal(str(value))
    lines = ["# Written by walrus on every start; edit the node config instead."]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    lines.append(f"include_if_exists = {quote_value(DYNAMIC_CONF)}")
    return "\n".join(lines) + "\n"


def _literal(value: str) -> str:
    if re.fullmatch(r"-?[0-9.]+[a-zA-Z]*|on|off|true|false", value):
        return value
    return quote_value(value)


@dataclass(frozen=True)
class DynamicConf:
    """Inputs of ``walrus.dynamic.conf`` (applied with a reload)."""
    primary_conninfo: str = ""
    primary_slot_name: str = ""
    synchronous_standby_names: str = ""
    read_only: bool = False


def render_dynamic_conf(d: DynamicConf) -> str:
    """The whole ``walrus.dynamic.conf``."""
    return "\n".join([
        "# Written by walrus at run time (reload, no restart).",
        f"primary_conninfo = {quote_value(d.primary_conninfo)}",
        f"primary_slot_name = {quote_value(d.primary_slot_name)}",
        f"synchronous_standby_names = {quote_value(d.synchronous_standby_names)}",
        f"default_transaction_read_only = {'on' if d.read_only else 'off'}",
    ]) + "\n"


def render_hba(replication_user: str, extra: tuple[str, ...] = (), password_rows: tuple[str, ...] = ()) -> str:
    """``pg_hba.conf``: trust on the local socket and loopback, then the
    configured ``extra`` rows, then ``password_rows`` (``auth.hba_rows``:
    scram-sha-256 from any other host; last, as pg_hba takes the first row
    that matches, so configured rows stay in force)."""
    rows = [
        "local all all trust",
        "local replication all trust",
        "host all all 127.0.0.1/32 trust",
        "host all all ::1/128 trust",
        f"host replication {replication_user} 127.0.0.1/32 trust",
        f"host replication {replication_user} ::1/128 trust",
    ]
    rows += [r.strip() for r in extra if r.strip()]
    rows += list(password_rows)
    return "# Written by walrus.\n" + "\n".join(rows) + "\n"
