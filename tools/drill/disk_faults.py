"""Faults of a node's disk: ``corrupt-wal`` (bytes flipped in a crashed,
stopped standby's WAL). Registered in ``SCENARIOS`` on import.

The promise under test: corrupt WAL is detected by its checksum, logged and
never replayed; the standby streams the damaged range again from the primary
and ends up holding every acknowledged write.
"""
from __future__ import annotations

import glob
import os
import time

import yaml

from walrus_ha.common.errors import WalrusError
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.scenarios import SCENARIOS, DrillContext, RoundFailed, mark, result, start_round, tally, \
    wait_rejoined

FLIP_BACK = 300           # flip bytes this far below the standby's flush LSN (its last few records)
FLIP_BYTES = 8
PG_SEGMENT = 16 * 1024 * 1024
# What PostgreSQL logs when a WAL record fails its check during recovery.
PG_DETECTED = ("incorrect resource manager data checksum", "invalid record length", "incorrect hole size",
               "invalid magic number", "invalid resource manager ID")


def wal_file_at(engine: str, data_dir: str, timeline: int, lsn: int, segment_size: int) -> tuple[str, int]:
    """(path of the WAL segment file holding ``lsn``, offset in it) in a node's
    data dir: the embedded engine's ``wal/`` or PostgreSQL's ``pg_wal/``. The
    newest timeline's file wins when several hold that segment."""
    segno = lsn // segment_size
    folder = os.path.join(data_dir, "pgdata", "pg_wal") if engine == "postgres" else os.path.join(data_dir, "wal")
    tail = f"{(segno * segment_size) >> 32:08X}{(segno * segment_size & 0xFFFFFFFF) // segment_size:08X}"
    found = sorted(p for p in glob.glob(os.path.join(folder, "*" + tail))
                   if len(os.path.basename(p)) == 24 and int(os.path.basename(p)[:8], 16) <= max(timeline, 1))
    if not found:
        raise RoundFailed(f"no WAL segment for {lsn:X} in {folder}")
    return found[-1], lsn % segment_size


def flip(path: str, offset: int, count: int = FLIP_BYTES) -> bytes:
    """Invert ``count`` bytes of ``path`` at ``offset`` (fsynced); returns the old bytes."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))
        f.flush()
        os.fsync(f.fileno())
    return old


def _status(ctx: DrillContext, name: str):
    st = ctx.cluster.agents.status(ctx.cluster.agent_address(name))
    if st is None:
        raise RoundFailed(f"{name}'s agent does not answer")
    return st


def corrupt_wal_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL a standby, flip bytes in its WAL a little below its flush LSN
    (in records its crash recovery reads), start it again. It must cut its WAL at the damaged record (embedded:
    ``wal_repairs`` grows), stream again, and hold every acknowledged write.
    RTO = restart -> streaming again."""
    leader, term_before, work = start_round(ctx, number, "corrupt-wal")
    engine = ctx.cluster.spec.engine.value
    standbys = sorted(n for n in ctx.cluster.node_names() if n != leader)
    victim = standbys[(number - 1) % len(standbys)]
    try:
        before = _status(ctx, victim).engine
        ctx.progress(f"round {number}: primary is {leader}; SIGKILL standby {victim} "
                     f"(flush {before.flush_lsn:X}) and flip {FLIP_BYTES} bytes of its WAL")
        # A crash, not a clean stop: a shutdown checkpoint would put the
        # damaged bytes behind the redo point, where nothing reads them.
        mark(ctx, f"SIGKILL {victim}")
        ctx.cluster.kill(victim)
        segment = PG_SEGMENT if engine == "postgres" else _embedded_segment_size(ctx, victim)
        target = max(0, before.flush_lsn - FLIP_BACK)
        path, offset = wal_file_at(engine, ctx.cluster.data_dir(victim), before.timeline, target, segment)
        flip(path, offset)
        pg_log = os.path.join(ctx.cluster.data_dir(victim), "postgres.log")
        log_from = os.path.getsize(pg_log) if engine == "postgres" and os.path.exists(pg_log) else 0
        restart_at = mark(ctx, f"flip {FLIP_BYTES} B of {os.path.basename(path)}, restart {victim}")
        ctx.cluster.start(victim)
        streaming_at = wait_rejoined(ctx, victim, leader)
    finally:
        time.sleep(0.3)
        work.stop()
    t = tally(ctx, work.snapshot())
    after = _status(ctx, victim).engine
    if engine == "embedded":
        detected = after.wal_repairs > before.wal_repairs
        how = after.wal_repair
    else:
        lines = _read_from(pg_log, log_from).splitlines()
        found = [ln for ln in lines if any(s in ln for s in PG_DETECTED)]
        detected, how = bool(found), (found[0].split("LOG:", 1)[-1].strip() if found else "")
    missing = _missing_on(ctx, victim, t.acks)
    ctx.progress(f"round {number}: {victim} streams again {streaming_at - restart_at:.3f} s after the restart; "
                 f"damage detected: {how or 'NO'}; "
                 f"{missing} acknowledged writes missing on {victim}, {t.lost} on {leader}")
    if not detected:
        raise RoundFailed(f"{victim} did not report the damaged WAL at {target:X}: replayed or missed?")
    if missing:
        raise RoundFailed(f"{missing} acknowledged writes missing on {victim} after it caught up")
    return result(ctx, work, t, number, "corrupt-wal", victim, leader, streaming_at - restart_at, None,
                  term_before, receipt=False,
                  extra={"victim": victim, "file": os.path.basename(path), "offset": offset,
                         "detected": how,
                         "missing_on_standby": missing})


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _embedded_segment_size(ctx: DrillContext, name: str) -> int:
    with open(ctx.cluster.processes[name].plan.config_path) as f:
        cfg = yaml.safe_load(f) or {}
    return int((cfg.get("embedded") or {}).get("segment_size", 16 * 1024 * 1024))


def _missing_on(ctx: DrillContext, name: str, acks, timeout_s: float = 15.0) -> int:
    """Acknowledged keys not (yet) readable on ``name``; waits up to
    ``timeout_s`` for it to catch up."""
    keys = [a.key for a in acks]
    backend = ctx.factory(ctx.cluster.data_address(name))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                missing = len(set(keys) - backend.existing(keys))
            except WalrusError:
                missing = len(keys)
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.5)
    finally:
        backend.close()


SCENARIOS["corrupt-wal"] = corrupt_wal_round
