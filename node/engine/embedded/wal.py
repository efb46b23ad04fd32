"""The write-ahead log: CRC-framed records in fixed-size segment files.

Rule of this module: **a byte range is WAL only if every record in it verifies**
(length, CRC32C, its own start-LSN stamp). Recovery stops at the first record
that does not, and the tail after it is zeroed so it can never be resurrected.

Layout
------
``<dir>/TTTTTTTTXXXXXXXXYYYYYYYY``: segment files of ``segment_size`` bytes,
named PostgreSQL-style (timeline current when the segment was created, then
``lsn >> 32`` and ``(lsn & 0xFFFFFFFF) // segment_size``; the segment number is
``lsn // segment_size``). The log is one byte stream: LSN = byte position;
records may span segment boundaries. ``<dir>/FLOOR`` holds the LSN at which this
log began (a record boundary). ``<dir>/spare-N`` are ready-made segment files
renamed into new segments: recycled ones (their stale bytes carry wrong LSN
stamps) or zero-filled ahead of need by a background thread, so crossing into
a new segment never stalls committers on a 16 MiB write + fsync. File handling
lives in ``segments.py``; this module gives the bytes their meaning.

Record framing (``framing.py``; little-endian, ``HEADER_SIZE`` = 20 bytes)::

    crc32c:u32 | total_len:u32 | start_lsn:u64 | timeline:u32 | payload
    crc covers total_len..end of payload; total_len = 20 + len(payload)

API (thread-safe; every method may be called from any thread)
-------------------------------------------------------------
``Wal.open(directory, segment_size, start_lsn=None, timeline=1) -> Wal``
    Create or recover. Recovery scans from ``start_lsn`` (a record boundary,
    e.g. a checkpoint's redo LSN; default: ``FLOOR``) to the first invalid
    record, zeroes the rest of that segment and deletes later segments. An
    empty directory starts a new log at ``start_lsn`` (default 0).
``append(payload, timeline) -> (start_lsn, end_lsn)``: write (not yet durable).
``flush(upto_lsn=None) -> flush_lsn``: group commit; concurrent callers share
    one ``fdatasync``. ``upto`` defaults to everything written so far.
``read_raw(start_lsn, max_bytes, limit_lsn=None) -> bytes``: whole framed
    records, byte-exact, from a record boundary, never past ``limit_lsn``
    (default: ``flush_lsn``; a sender ships at most ``SHIP_AHEAD`` bytes
    past it). At least one record if one is available, even if it is
    larger than ``max_bytes`` (but never past ``limit_lsn``); ``b""`` if none.
``is_record_start(lsn) -> bool``: a verified record starts there (or it is
    the WAL end). ``record_holding(lsn, max_len) -> WalRecord | None``: the
    verified record (at most ``max_len`` long) with ``lsn`` inside it.
``append_raw(start_lsn, data) -> end_lsn``: standby side; ``start_lsn`` must
    equal ``write_lsn`` (else ``CorruptWal``); every record is verified first
    and nothing is written if any fails (``CorruptWal``).
``iter_records(start_lsn, end_lsn=None)`` -> ``WalRecord(start, end, timeline,
    payload)``, verified, for records that end by ``end_lsn`` (default
    ``write_lsn``). Raises ``CorruptWal`` on a bad record, ``EngineError`` if
    ``start_lsn`` was recycled.
``truncate(lsn)``: drop everything at/after ``lsn`` (durably; a record boundary).
``recycle(keep_from_lsn) -> int``: remove segments wholly below it (never the
    current one, never WAL not yet flushed); returns how many. The caller
    computes ``keep_from_lsn`` as min(checkpoint redo LSN, slots' restart LSNs).
``wake_all()``: wake every waiter (e.g. a sender checking its stop flag).
``segment_files()``: retained segment file names, oldest first.
``wait_for_write(lsn, timeout) -> bool``: until ``write_lsn > lsn``.
``wait_for_flush(lsn, timeout) -> bool``: until ``flush_lsn > lsn``.
``add_flush_listener(fn)`` / ``remove_flush_listener(fn)``: ``fn(flush_lsn)``
    is called (under the WAL lock: it must only set a flag, e.g.
    ``LoopSignal.set``) each time the flush LSN moves and on ``wake_all``;
    how coroutines on the engine's event loop wait for WAL without a thread.
Properties: ``write_lsn``, ``flush_lsn``, ``oldest_lsn``, ``last_timeline``
(timeline of the last record, or the ``timeline`` given to ``open``),
``segment_size``, ``directory``. ``close()``. ``stats`` (``walstats.WalStats``:
bytes written, fdatasync latency) and ``stats_snapshot()``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

from walrus_ha.common.errors import CorruptWal, EngineError, WalRemoved
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn

from .framing import (  # noqa: F401 (re-exported)
    HEADER,
    HEADER_SIZE,
    MAX_RECORD,
    ScanStop,
    WalRecord,
    encode_record,
    next_valid_record,
    parse_segment_name,
    scan,
    segment_name,
    split_records,
    verify_record,
)
from .segments import SegmentStore, fsync_dir
from .walstats import WalStats, WalStatsSnapshot

_SCAN_CHUNK = 1 << 20
# How far past the end of valid WAL recovery looks for valid records, which
# tell a damaged record header from the end of the log (one large record).
DAMAGE_SEARCH = 1 << 20

log = logging.getLogger(__name__)

# How far past its own flush LSN a primary may ship WAL (a lone commit's
# record goes to the standbys before the primary's fdatasync). A fixed
# protocol constant, not a setting: a standby's WAL then holds at most this
# many bytes its primary may not have made durable, so everything below
# ``write_lsn - SHIP_AHEAD`` is durable on the node that sent it, and a
# primary that restarts after a crash skips this many bytes (a SKIP record)
# before it writes anything new. See docs/internals.md, "Shipping ahead".
SHIP_AHEAD = 16 * 1024


class Wal:
    """A durable, thread-safe write-ahead log (see the module docstring)."""

    def __init__(self, directory: str, segment_size: int, timeline: int) -> None:
        self.directory = directory
        self.segment_size = segment_size
        self._lock = threading.Lock()
        self._write_cond = threading.Condition(self._lock)
        self._flush_cond = threading.Condition(self._lock)
        self._seg = SegmentStore(directory, segment_size, self._lock)
        self._segments = self._seg.names         # segno -> file name (shared dict)
        self._flushing = False
        self._flush_listeners: tuple = ()
        self._write_lsn = 0
        self._flush_lsn = 0
        self._floor = 0
        self._timeline = timeline
        self._closed = False
        self._broken = ""                       # set by a failed fsync: refuse all work
        self.repairs: list[str] = []            # damaged WAL ranges recovery dropped (see _load)
        self.stats = WalStats()                 # metrics; the engine swaps in its own (walstats.py)

    # ----------------------------------------------------------- open/recover
    @classmethod
    def open(cls, directory: str, segment_size: int, start_lsn: int | None = None,
             timeline: int = 1) -> Wal:
        """Open (creating if needed) and recover the log in ``directory``.

        Raises EngineError if ``start_lsn`` is below the oldest retained WAL.
        """
        os.makedirs(directory, exist_ok=True)
        wal = cls(directory, segment_size, timeline)
        wal._load(start_lsn)
        return wal

    def _load(self, start_lsn: int | None) -> None:
        self._seg.load()
        floor_path = os.path.join(self.directory, "FLOOR")
        if os.path.exists(floor_path):
            with open(floor_path, encoding="ascii") as f:
                self._floor = int(f.read().strip())
        else:
            self._floor = start_lsn or 0
            self._write_floor(self._floor)
        start = self._floor if start_lsn is None else start_lsn
        if start < self._floor or (self._segments and start < self.oldest_lsn):
            raise EngineError(f"WAL recovery start {format_lsn(start)} is below the oldest "
                              f"retained WAL {format_lsn(max(self._floor, self.oldest_lsn))}")
        if not self._segments:
            self._write_lsn = self._flush_lsn = start
            return
        end, tli = self._scan_end(start)
        if tli:
            self._timeline = tli
        self._report_damage(end)
        self._seg.cut_tail(end)
        self._write_lsn = self._flush_lsn = end

    def _write_floor(self, lsn: int) -> None:
        path = os.path.join(self.directory, "FLOOR")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{lsn}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.directory)

    def _scan_end(self, start: int) -> tuple[int, int]:
        """Walk valid records from ``start``; return (end of valid WAL, last tli)."""
        pos, tli = start, 0
        limit = (max(self._segments) + 1) * self.segment_size
        while pos < limit:
            buf, recs, off, why = self._scan_chunk(pos, limit)
            if recs:
                tli = recs[-1][2]
            pos += off
            if why is ScanStop.INVALID or not recs:
                break
        return pos, tli

    def _report_damage(self, end: int) -> None:
        """Recovery is about to cut the WAL at ``end``. That is the normal end
        of the log when the bytes there are zeros or an old record of a
        recycled segment (its LSN stamp differs). A header stamped with ``end``
        itself means a record was written here and fails its check (flipped
        bytes, a torn write): log the range about to be dropped (up to where
        valid records stop) and count it in ``repairs``. The cut itself is
        unchanged: a standby streams the dropped range again."""
        limit = (max(self._segments) + 1) * self.segment_size
        head = self._seg.pread(end, HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            return
        _, total, stamp, _ = HEADER.unpack_from(head)
        # The header itself may be what was damaged (its length or LSN): then
        # valid records follow within one record's reach, where they are found.
        def search() -> int | None:
            return next_valid_record(self._seg.pread(end, min(DAMAGE_SEARCH, limit - end)), end)
        if stamp == end and HEADER_SIZE <= total <= MAX_RECORD:
            reason = "record runs past the last segment" if end + total > limit else "record fails its CRC"
            pos = min(end + total, limit)
            if pos < limit and not self._scan_chunk(pos, limit)[1]:
                pos = search() or pos           # its length is what was damaged
        else:
            nxt = search()
            if nxt is None:
                return
            reason, pos = "record header damaged (valid records follow)", nxt
        while pos < limit:                      # how far the valid records after it go
            _, recs, off, why = self._scan_chunk(pos, limit)
            pos += off
            if why is ScanStop.INVALID or not recs:
                break
        text = f"dropped {format_lsn(end)}..{format_lsn(pos)} ({pos - end} bytes): {reason}"
        self.repairs.append(text)
        log_event(log, "wal_damaged", logging.ERROR, directory=self.directory, frm=format_lsn(end),
                  to=format_lsn(pos), bytes=pos - end, reason=reason,
                  action="cut the WAL there; a standby streams the rest again")

    def _scan_chunk(self, pos: int, limit: int):
        """Read from ``pos`` (at most to ``limit``) and verify whole records:
        (buf, [(offset, total, tli)], stop_offset, why). A record larger than
        one chunk is read whole. Lock held or during open."""
        buf = self._seg.pread(pos, min(_SCAN_CHUNK, limit - pos))
        recs, off, why = scan(buf, pos)
        if not recs and why is ScanStop.INCOMPLETE and len(buf) >= HEADER_SIZE:
            total = HEADER.unpack_from(buf)[1]            # stamp and length already checked
            if pos + total <= limit:
                buf = self._seg.pread(pos, total)
                recs, off, why = scan(buf, pos)
        return buf, recs, off, why

    # ------------------------------------------------------------- writing
    def append(self, payload: bytes, timeline: int) -> tuple[int, int]:
        """Append one record; returns its (start_lsn, end_lsn). Not durable
        until ``flush`` covers ``end_lsn``."""
        with self._lock:
            self._check_open()
            start = self._write_lsn
            rec = encode_record(start, timeline, payload)
            self._seg.pwrite(start, rec, timeline)
            self._write_lsn = end = start + len(rec)
            self.stats.wrote(len(rec))
            self._timeline = timeline
            self._seg.maybe_prepare_spare(self._write_lsn)
            self._write_cond.notify_all()
            return start, end

    def append_raw(self, start_lsn: int, data: bytes) -> int:
        """Write framed records received from a primary at ``start_lsn``.

        Raises CorruptWal (writing nothing) if ``start_lsn != write_lsn`` or any
        record fails verification or the chunk ends mid-record.
        """
        records = split_records(data, start_lsn)   # raises CorruptWal
        if not records:
            return start_lsn
        with self._lock:
            self._check_open()
            if start_lsn != self._write_lsn:
                raise CorruptWal(f"WAL chunk starts at {format_lsn(start_lsn)}, but local WAL "
                                 f"ends at {format_lsn(self._write_lsn)}")
            tli = records[-1][2]
            self._seg.pwrite(start_lsn, data, records[0][2])
            self._write_lsn = end = start_lsn + len(data)
            self.stats.wrote(len(data))
            self._timeline = tli
            self._seg.maybe_prepare_spare(self._write_lsn)
            self._write_cond.notify_all()
            return end

    def flush(self, upto_lsn: int | None = None) -> int:
        """Make WAL up to ``upto_lsn`` (default: all written) durable.

        Group commit: one caller (the leader) fdatasyncs everything written so
        far with the lock released; the others wait and share its result.
        Returns the flush LSN (>= min(upto_lsn, write_lsn)). Raises
        EngineError if an fsync failed (now or before: after a failed fsync
        the kernel may have dropped the dirty pages, so the WAL refuses all
        further work until it is reopened and recovered, like PostgreSQL's
        PANIC), or if the WAL was closed.
        """
        with self._lock:
            target = self._write_lsn if upto_lsn is None else upto_lsn
            # min() with write_lsn inside the loop: a truncate may lower it meanwhile
            while self._flush_lsn < min(target, self._write_lsn):
                self._check_open()
                if self._flushing:
                    self._flush_cond.wait()
                    continue
                self._flushing = True
                goal = self._write_lsn
                fds, _ = self._seg.dirty_fds()
                self._lock.release()
                began = time.perf_counter()
                try:
                    for fd in fds:
                        os.fdatasync(fd)
                except OSError as exc:
                    self._lock.acquire()
                    self._broken = f"WAL fsync failed ({exc}); reopen the WAL to recover"
                    self._flushing = False
                    self._flush_cond.notify_all()
                    raise EngineError(self._broken) from exc
                self._lock.acquire()
                if fds:
                    self.stats.fsynced(time.perf_counter() - began)
                self._flushing = False
                self._flush_lsn = max(self._flush_lsn, goal)
                self._seg.close_old_fds(self._write_lsn // self.segment_size)
                self._flush_cond.notify_all()
                for fn in self._flush_listeners:
                    fn(self._flush_lsn)
            return self._flush_lsn

    # ------------------------------------------------------------- reading
    def read_raw(self, start_lsn: int, max_bytes: int, limit_lsn: int | None = None) -> bytes:
        """Whole records from ``start_lsn`` (a record boundary) up to
        ``max_bytes`` (at least one record), never past ``limit_lsn``
        (default ``flush_lsn``). Raises EngineError if ``start_lsn`` was
        recycled, CorruptWal if the bytes there are not a record."""
        with self._lock:
            self._check_open()
            limit = self._flush_lsn if limit_lsn is None else min(limit_lsn, self._write_lsn)
            if start_lsn < self.oldest_lsn:
                raise WalRemoved(f"WAL at {format_lsn(start_lsn)} was removed "
                                 f"(oldest is {format_lsn(self.oldest_lsn)})")
            if start_lsn >= limit:
                return b""
            buf = self._seg.pread(start_lsn, min(limit - start_lsn, max(max_bytes, HEADER_SIZE)))
            cut = 0
            while cut + HEADER_SIZE <= len(buf):
                _, total, lsn, _ = HEADER.unpack_from(buf, cut)
                if total < HEADER_SIZE or total > MAX_RECORD or lsn != start_lsn + cut:
                    raise CorruptWal(f"no WAL record at {format_lsn(start_lsn + cut)}")
                if cut + total > len(buf):
                    # one record larger than max_bytes: send it whole, but
                    # never past the limit (it may sit mid-record)
                    if cut == 0 and start_lsn + total <= limit:
                        buf = self._seg.pread(start_lsn, total)
                        cut = total
                    break
                cut += total
            return buf[:cut]

    def is_record_start(self, lsn: int) -> bool:
        """True if a whole, verified record starts at ``lsn``, or ``lsn`` is
        the WAL end. False inside a record, or past the end."""
        with self._lock:
            self._check_open()
            if lsn == self._write_lsn:
                return True
            if lsn > self._write_lsn or lsn < self.oldest_lsn:
                return False
            head = self._seg.pread(lsn, min(HEADER_SIZE, self._write_lsn - lsn))
            if len(head) < HEADER_SIZE:
                return False
            total = HEADER.unpack_from(head)[1]
            if total < HEADER_SIZE or lsn + total > self._write_lsn:
                return False
            return verify_record(self._seg.pread(lsn, total), 0, lsn) is not None

    def record_holding(self, lsn: int, max_len: int) -> WalRecord | None:
        """The verified record, at most ``max_len`` bytes long, that starts
        before ``lsn`` and ends after it; None if there is none. Scans back
        byte by byte (a refused standby's start, not a hot path)."""
        with self._lock:
            self._check_open()
            lo = max(self.oldest_lsn, lsn - max_len + 1)
            if not lo < lsn < self._write_lsn:
                return None
            buf = self._seg.pread(lo, min(self._write_lsn, lo + 2 * max_len) - lo)
        for start in range(lsn - 1, lo - 1, -1):
            o = start - lo
            if int.from_bytes(buf[o + 8:o + 16], "little") != start:
                continue
            found = verify_record(buf, o, start)
            if found is not None and start + found[0] > lsn:
                total, tli = found
                return WalRecord(start, start + total, tli, bytes(buf[o + HEADER_SIZE:o + total]))
        return None

    def iter_records(self, start_lsn: int, end_lsn: int | None = None) -> Iterator[WalRecord]:
        """Yield verified records from ``start_lsn`` (a record boundary) that
        end by ``end_lsn`` (default: ``write_lsn`` at call time). Raises
        CorruptWal on a bad record, EngineError if ``start_lsn`` was recycled."""
        with self._lock:
            end = self._write_lsn if end_lsn is None else min(end_lsn, self._write_lsn)
        pos = start_lsn
        while pos < end:
            with self._lock:
                self._check_open()
                if pos < self.oldest_lsn:
                    raise WalRemoved(f"WAL at {format_lsn(pos)} was removed "
                                     f"(oldest is {format_lsn(self.oldest_lsn)})")
                buf, recs, off, why = self._scan_chunk(pos, end)
            if why is ScanStop.INVALID:
                raise CorruptWal(f"bad WAL record at {format_lsn(pos + off)}")
            if not recs:
                break                                     # the next record ends past end_lsn
            for o, total, tli in recs:
                yield WalRecord(pos + o, pos + o + total, tli, bytes(buf[o + HEADER_SIZE: o + total]))
            pos += off

    # ------------------------------------------------------------- waiting
    def wait_for_write(self, lsn: int, timeout: float | None) -> bool:
        """Block until ``write_lsn > lsn`` or ``timeout`` seconds; True if so."""
        return self._wait(self._write_cond, lambda: self._write_lsn > lsn, timeout)

    def wait_for_flush(self, lsn: int, timeout: float | None) -> bool:
        """Block until ``flush_lsn > lsn`` or ``timeout`` seconds; True if so."""
        return self._wait(self._flush_cond, lambda: self._flush_lsn > lsn, timeout)

    def _wait(self, cond: threading.Condition, pred, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not pred():
                if self._closed:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                cond.wait(remaining)
            return True

    def wake_all(self) -> None:
        """Wake every waiter (e.g. so a WAL sender re-checks a stop flag)."""
        with self._lock:
            self._write_cond.notify_all()
            self._flush_cond.notify_all()
            for fn in self._flush_listeners:
                fn(self._flush_lsn)

    def add_flush_listener(self, fn) -> None:
        """Call ``fn(flush_lsn)`` whenever the flush LSN moves (see module doc)."""
        with self._lock:
            self._flush_listeners = self._flush_listeners + (fn,)

    def remove_flush_listener(self, fn) -> None:
        with self._lock:
            self._flush_listeners = tuple(f for f in self._flush_listeners if f != fn)

    # ----------------------------------------------------- truncate/recycle
    def truncate(self, lsn: int) -> None:
        """Durably drop all WAL at/after ``lsn`` (a record boundary, >= oldest)."""
        with self._lock:
            self._check_open()
            while self._flushing:
                self._flush_cond.wait()
            if lsn >= self._write_lsn:
                return
            if lsn < self.oldest_lsn:
                raise EngineError(f"cannot truncate WAL to {format_lsn(lsn)}: below the oldest "
                                  f"retained WAL {format_lsn(self.oldest_lsn)}")
            self._seg.cut_tail(lsn)
            self._write_lsn = lsn
            self._flush_lsn = min(self._flush_lsn, lsn)
            if not self._segments:
                self._floor = lsn
                self._write_floor(lsn)
            self._flush_cond.notify_all()
            self._write_cond.notify_all()

    def recycle(self, keep_from_lsn: int) -> int:
        """Remove segments wholly below ``keep_from_lsn`` (never the current
        one); keep a few as spares for new segments. Returns the count."""
        with self._lock:
            self._check_open()
            while self._flushing:
                self._flush_cond.wait()
            current = self._write_lsn // self.segment_size
            keep = min(keep_from_lsn, self._flush_lsn)   # never drop WAL not yet durable
            gone = [s for s in sorted(self._segments)
                    if (s + 1) * self.segment_size <= keep and s < current]
            self._seg.retire(gone)
            return len(gone)

    # ----------------------------------------------------------- properties
    @property
    def write_lsn(self) -> int:
        """End of WAL written (valid records), durable or not."""
        return self._write_lsn

    @property
    def flush_lsn(self) -> int:
        """End of WAL known durable."""
        return self._flush_lsn

    @property
    def last_timeline(self) -> int:
        """Timeline of the last record written (or given to ``open``)."""
        return self._timeline

    @property
    def oldest_lsn(self) -> int:
        """Lowest LSN still readable (start of the oldest retained segment,
        or where this log began)."""
        if not self._segments:
            return max(self._floor, self._write_lsn)
        return max(self._floor, min(self._segments) * self.segment_size)

    def stats_snapshot(self) -> WalStatsSnapshot:
        """Bytes written and fdatasync latencies so far (``walstats``)."""
        with self._lock:
            return self.stats.snapshot()

    def segment_files(self) -> list[str]:
        """Names of the retained segment files, oldest first."""
        with self._lock:
            return [self._segments[s] for s in sorted(self._segments)]

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("WAL is closed")
        if self._broken:
            raise EngineError(self._broken)

    def close(self) -> None:
        """Flush nothing; close files. Waiters are woken and return False."""
        with self._lock:
            while self._flushing:
                self._flush_cond.wait()
            self._closed = True
            preparer = self._seg.close()
            self._write_cond.notify_all()
            self._flush_cond.notify_all()
            for fn in self._flush_listeners:
                fn(self._flush_lsn)
        if preparer is not None:
            preparer.join()
