"""Did this stopped node's WAL diverge from its upstream's timeline?

A primary that crashed (or was SIGKILLed with its agent) usually wrote no WAL
its standbys did not receive: its end of WAL is at or before the point where
the new leader's timeline forked off. Such a node needs no ``pg_rewind``; it
can start directly as a standby of the new leader (recovery follows the
timeline switch). Crash recovery as a primary first would write an
end-of-recovery checkpoint on the old timeline and so *make* it diverge.

``within_history`` is the pure decision; ``local_wal_end`` and
``upstream_history`` read the facts (``pg_controldata`` + ``pg_waldump`` on
the stopped data directory, SQL on the upstream). Any doubt answers "no":
the caller then rewinds as before. PostgreSQL itself refuses to follow a
timeline that forked before its replay position, so a wrong "yes" costs time
(the caller falls back to a rewind), never data or a write.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass

from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import parse_lsn
from walrus_ha.node.engine.postgres import sql
from walrus_ha.node.engine.postgres.binaries import Binaries
from walrus_ha.node.engine.postgres.process import OsUser

log = logging.getLogger(__name__)

_END = re.compile(r"invalid record length at ([0-9A-Fa-f]+/[0-9A-Fa-f]+)")
_END_ANY = re.compile(r"at ([0-9A-Fa-f]+/[0-9A-Fa-f]+): (?:invalid|incorrect|record with|contrecord|"
                      r"missing contrecord|unexpected pageaddr|invalid magic|invalid info bits)")


@dataclass(frozen=True)
class WalEnd:
    timeline: int
    end_lsn: int          # end of the last valid record (where recovery would stop)


def parse_history(text: str) -> dict[int, int]:
    """A timeline history file -> {parent timeline: switchpoint LSN}."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out[int(parts[0])] = parse_lsn(parts[1])
    return out


def within_history(local: WalEnd, upstream_timeline: int, history: dict[int, int]) -> bool:
    """True when all of ``local``'s WAL lies on the upstream's history: its
    timeline is an ancestor of the upstream's and it ends at or before the
    switchpoint off it. (Same timeline: unknown here, so False.)"""
    if local.timeline >= upstream_timeline or local.timeline not in history:
        return False
    return local.end_lsn <= history[local.timeline]


def parse_controldata(text: str) -> tuple[str, int, str]:
    """(cluster state, checkpoint timeline, REDO location) from pg_controldata."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return (fields["Database cluster state"], int(fields["Latest checkpoint's TimeLineID"]),
            fields["Latest checkpoint's REDO location"])


def parse_waldump_end(text: str) -> int | None:
    """The LSN where ``pg_waldump`` found no further valid record, if it says so."""
    m = _END.search(text) or _END_ANY.search(text)
    return parse_lsn(m.group(1)) if m else None


def _run(argv: list[str], user: OsUser, timeout: float, attempts: int = 3) -> subprocess.CompletedProcess:
    """Run a read-only tool; again if it died of a signal before writing
    anything (a child forked from the threaded agent occasionally does)."""
    for _ in range(attempts):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **user.popen_kwargs())
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise EngineError(f"{argv[0]}: {exc}") from None
        if proc.returncode >= 0 or proc.stdout or proc.stderr:
            return proc
        # Should no longer happen (walrus turns gRPC's fork handlers off); say so if it does.
        log_event(log, "tool.retry", tool=os.path.basename(argv[0]), signal=-proc.returncode,
                  level=logging.WARNING)
    return proc


def local_wal_end(bins: Binaries, user: OsUser, pgdata: str, timeout: float = 30.0) -> WalEnd | None:
    """The end of the stopped primary's WAL on its checkpoint timeline, or None
    when it cannot tell (a server that was running, a WAL file missing, ...)."""
    cd = _run([bins.path("pg_controldata"), "-D", pgdata], user, timeout)
    if cd.returncode != 0:
        return None
    try:
        state, tli, redo = parse_controldata(cd.stdout)
    except (KeyError, ValueError):
        return None
    if state not in ("in production", "shut down"):
        log.info("divergence check: cluster state %r", state)
        return None
    start = parse_lsn(redo)
    # A promotion since the last checkpoint: the WAL goes on on a later timeline,
    # whose history file (written at the promotion) says where it starts.
    newest = max([tli] + _history_timelines(f"{pgdata}/pg_wal"))
    if newest > tli:
        own = _read(f"{pgdata}/pg_wal/{newest:08X}.history")
        switch = parse_history(own).get(max(parse_history(own), default=0)) if own else None
        if switch is None:
            return None
        tli, start = newest, max(start, switch)
    wd = _run([bins.path("pg_waldump"), "-q", "-p", f"{pgdata}/pg_wal", "-t", str(tli),
               "-s", f"{start >> 32:X}/{start & 0xFFFFFFFF:X}"], user, timeout)
    end = parse_waldump_end(wd.stdout + wd.stderr)
    if end is None:
        log.info("divergence check: no end of WAL (exit %s) in %r", wd.returncode, (wd.stdout + wd.stderr)[-300:])
        return None
    return WalEnd(tli, end)


def _history_timelines(wal_dir: str) -> list[int]:
    try:
        names = os.listdir(wal_dir)
    except OSError:
        return []
    return [int(n[:8], 16) for n in names if re.fullmatch(r"[0-9A-F]{8}\.history", n)]


def local_history(pgdata: str, timeline: int) -> dict[int, int] | None:
    """{parent timeline: switchpoint} of ``timeline`` from the node's own
    history file ({} on timeline 1); None when the file is missing."""
    if timeline <= 1:
        return {}
    text = _read(f"{pgdata}/pg_wal/{timeline:08X}.history")
    return None if text is None else parse_history(text)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def upstream_history(conninfo: str) -> tuple[int, dict[int, int]]:
    """(upstream's current timeline, its history) via SQL on the upstream
    primary (superuser: ``pg_read_file``). Raises EngineError."""
    rows = sql.execute_once(conninfo, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    tli = int(rows[0][0][:8], 16)
    if tli == 1:
        return tli, {}
    rows = sql.execute_once(conninfo, "SELECT pg_read_file(%s)", (f"pg_wal/{tli:08X}.history",))
    return tli, parse_history(rows[0][0])


def can_follow_without_rewind(bins: Binaries, user: OsUser, pgdata: str, conninfo: str) -> bool:
    """The stopped primary's WAL lies on the upstream's history (see module doc)."""
    try:
        local = local_wal_end(bins, user, pgdata)
        if local is None:
            return False
        up_tli, history = upstream_history(conninfo)
    except (EngineError, IndexError, ValueError) as exc:
        log.info("divergence check inconclusive: %s", exc)
        return False
    ok = within_history(local, up_tli, history)
    log.info("divergence check: local timeline %d ends at %X/%X; upstream timeline %d switchpoints %s -> %s",
             local.timeline, local.end_lsn >> 32, local.end_lsn & 0xFFFFFFFF, up_tli,
             {k: f"{v >> 32:X}/{v & 0xFFFFFFFF:X}" for k, v in history.items()},
             "no rewind needed" if ok else "rewind")
    return ok
