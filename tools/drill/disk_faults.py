"""Faults of a node's disk: ``corrupt-wal`` (bytes flipped in a crashed,
stopped standby's WAL) and ``disk-full`` (the primary's filesystem filled).
Registered in ``SCENARIOS`` on import.

The promise under test: corrupt WAL is detected by its checksum, logged and
never replayed; the standby streams the damaged range again from the primary
and ends up holding every acknowledged write.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import subprocess
import time

import yaml

from walrus_ha.tools.drill import checker
from walrus_ha.tools.drill.report import RoundResult
from walrus_ha.tools.drill.scenarios import (
    SCENARIOS,
    DrillContext,
    RoundFailed,
    mark,
    result,
    start_round,
    tally,
    traits,
    wait_for,
    wait_rejoined,
)
from walrus_ha.tools.drill.workload import Workload

FLIP_BACK = 300           # flip bytes this far below the standby's flush LSN (its last few records)
FLIP_BYTES = 8
PG_SEGMENT = 16 * 1024 * 1024


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
    st = ctx.local().agents.status(ctx.local().agent_address(name))
    if st is None:
        raise RoundFailed(f"{name}'s agent does not answer")
    return st


def corrupt_wal_round(ctx: DrillContext, number: int) -> RoundResult:
    """SIGKILL a standby, flip bytes in its WAL a little below its flush LSN
    (in records its crash recovery reads), start it again. It must cut its WAL at the damaged record (embedded:
    ``wal_repairs`` grows), stream again, and hold every acknowledged write.
    RTO = restart -> streaming again."""
    leader, term_before, work = start_round(ctx, number, "corrupt-wal")
    engine = ctx.local().spec.engine.value
    standbys = sorted(n for n in ctx.local().node_names() if n != leader)
    victim = standbys[(number - 1) % len(standbys)]
    try:
        before = _status(ctx, victim).engine
        ctx.progress(f"round {number}: primary is {leader}; SIGKILL standby {victim} "
                     f"(flush {before.flush_lsn:X}) and flip {FLIP_BYTES} bytes of its WAL")
        # A crash, not a clean stop: a shutdown checkpoint would put the
        # damaged bytes behind the redo point, where nothing reads them.
        mark(ctx, f"SIGKILL {victim}")
        ctx.local().kill(victim)
        segment = PG_SEGMENT if engine == "postgres" else _embedded_segment_size(ctx, victim)
        target = max(0, before.flush_lsn - FLIP_BACK)
        path, offset = wal_file_at(engine, ctx.local().data_dir(victim), before.timeline, target, segment)
        flip(path, offset)
        restart_at = mark(ctx, f"flip {FLIP_BYTES} B of {os.path.basename(path)}, restart {victim}")
        ctx.local().start(victim)
        streaming_at = wait_rejoined(ctx, victim, leader)
    finally:
        time.sleep(0.3)
        work.stop()
    t = tally(ctx, work.snapshot())
    after = _status(ctx, victim).engine
    # The counter belongs to the engine object of the agent this round
    # restarted: whatever it counts was found when the server (embedded:
    # storage) recovered from the damaged WAL. PostgreSQL's own words for it
    # are read from its log by the engine (status.wal_repair).
    detected = after.wal_repairs > 0
    how = after.wal_repair
    missing = t.standby_missing.get(victim, 0)      # tally read every standby back once caught up
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


def _embedded_segment_size(ctx: DrillContext, name: str) -> int:
    with open(ctx.local().processes[name].plan.config_path) as f:
        cfg = yaml.safe_load(f) or {}
    return int((cfg.get("embedded") or {}).get("segment_size", 16 * 1024 * 1024))


SCENARIOS["corrupt-wal"] = traits(local_only="it edits a crashed standby's WAL files")(corrupt_wal_round)


# -- disk-full ------------------------------------------------------------------------

# Every round leaves its acknowledged writes (about 13 MiB of filler values)
# on every node: 128 MiB filled the standbys after ~6 rounds, so a 16-round
# campaign needs more. tmpfs takes memory only for what is written.
SMALL_FS_MB = 512
# PostgreSQL keeps more than 128 MiB of WAL alone (wal_keep_size 128MB, and
# min_wal_size 80MB of recycled segments): at 128 MiB its standbys filled up
# too and could neither stream nor be promoted after a round or two.
PG_SMALL_FS_MB = 512
# The filler: one writer of 128 KiB values, so the primary needs new WAL
# segments soon after its disk is full (segments are preallocated ahead).
FILLER_VALUE = 128 * 1024


class SmallDisks:
    """A small tmpfs mounted on every node's data dir of a cluster that has
    not started yet; ``unmount`` (after the cluster stopped) removes them.
    What ``disk-full`` needs (``own_cluster``): the primary's filesystem can
    then be filled without touching the host's disk. Size: ``size_mb``, or by
    engine (``SMALL_FS_MB``, ``PG_SMALL_FS_MB``)."""

    def __init__(self, size_mb: int = 0) -> None:
        self.size_mb = size_mb
        self.mounted: list[str] = []

    def mount(self, cluster) -> None:
        if not self.size_mb:
            self.size_mb = PG_SMALL_FS_MB if cluster.spec.engine.value == "postgres" else SMALL_FS_MB
        for name in cluster.node_names():
            where = cluster.data_dir(name)
            os.makedirs(where, exist_ok=True)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", where],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RoundFailed(f"cannot mount a {self.size_mb} MiB tmpfs on {where}: "
                                  f"{r.stderr.strip() or r.returncode}")
            self.mounted.append(where)

    def unmount(self) -> list[str]:
        """Unmount everything mounted here; returns what could not be (lazily unmounted then)."""
        left = []
        for where in reversed(self.mounted):
            if subprocess.run(["umount", where], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", where], capture_output=True)
                left.append(where)
        self.mounted.clear()
        return left


def _fill(where: str) -> int:
    """Write a ballast file in ``where`` until its filesystem is full; bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(os.path.join(where, "ballast"), "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return written


def disk_full_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (mounts a small tmpfs on every node's data dir)"
    return None


def disk_full_round(ctx: DrillContext, number: int) -> RoundResult:
    """Fill the primary's filesystem (a small tmpfs on its data dir) under
    load (plus a client writing 128 KiB values, so WAL soon needs new
    space): its writes fail, the orchestrator replaces it after
    ``primary_write_failure_timeout`` (default 10 s) without losing an
    acknowledged write; then free the space: it must rejoin as a standby.
    RTO = full -> first write acknowledged by a new primary."""
    old, term_before, work = start_round(ctx, number, "disk-full")
    where = ctx.local().data_dir(old)
    filler = Workload(ctx.tracker, ctx.factory, prefix=f"{work.prefix}big", writers=1, pause_s=0.02,
                      sync=ctx.local().spec.sync, value_size=FILLER_VALUE).start()
    ctx.progress(f"round {number}: primary is {old}; filling its filesystem ({where}) while a client writes "
                 f"{FILLER_VALUE >> 10} KiB values")
    stopped = False
    try:
        fault_at = mark(ctx, f"fill {old}'s disk")
        try:
            filled = _fill(where)
            rto_s, new = wait_for(lambda: checker.rto(work.snapshot(), fault_at, old),
                                  ctx.failover_timeout_s + 15.0, "a write acknowledged by a new primary")
            # Its job is done; on the new primary its values would fill every
            # node's small disk over the rounds (6 MB/s) until no standby can
            # take over or stream any more.
            filler.stop()
            stopped = True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(where, "ballast"))
            freed_at = mark(ctx, f"free {old}'s disk")
        ctx.progress(f"round {number}: {new} acknowledged the first write {rto_s:.3f} s after {old}'s disk "
                     f"filled ({filled >> 20} MiB ballast); space freed")
        rejoin_s = wait_rejoined(ctx, old, new) - freed_at
    finally:
        time.sleep(0.3)
        work.stop()
        if not stopped:
            filler.stop()
    t = tally(ctx, work.snapshot() + filler.snapshot())
    ctx.progress(f"round {number}: {old} streams again {rejoin_s:.3f} s after the space came back; "
                 f"{t.lost} of {len(t.acks)} acknowledged writes missing")
    return result(ctx, work, t, number, "disk-full", old, new, rto_s, rejoin_s, term_before,
                  extra={"ballast_mib": filled >> 20})


# own_cluster: the CLI mounts these before the fault's cluster starts
SCENARIOS["disk-full"] = traits(unavailable=disk_full_problem, own_cluster=SmallDisks,
                               local_only="it mounts a small tmpfs on the data dirs")(disk_full_round)
