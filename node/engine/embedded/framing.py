"""WAL record framing and segment naming (pure; no file I/O).

Rule: a record is valid only if its length is sane, it is complete, it claims
the LSN it sits at, and its CRC32C (over everything after the CRC) matches.

Record layout (little-endian, ``HEADER_SIZE`` = 20 bytes)::

    crc32c:u32 | total_len:u32 | start_lsn:u64 | timeline:u32 | payload
"""
from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass

import crc32c

from walrus_ha.common.errors import CorruptWal, EngineError
from walrus_ha.common.lsn import format_lsn

HEADER = struct.Struct("<IIQI")
HEADER_SIZE = HEADER.size          # 20
_AFTER_CRC = struct.Struct("<IQI")
MAX_RECORD = 256 * 1024 * 1024     # sanity bound on total_len
_SEG_RE = re.compile(r"^[0-9A-F]{24}$")


@dataclass(frozen=True)
class WalRecord:
    """One decoded, verified record: ``[start, end)`` in the log."""
    start: int
    end: int
    timeline: int
    payload: bytes


def encode_record(start_lsn: int, timeline: int, payload: bytes) -> bytes:
    """Frame ``payload`` as the record that starts at ``start_lsn``."""
    total = HEADER_SIZE + len(payload)
    if total > MAX_RECORD:
        raise EngineError(f"WAL record too large: {total} bytes")
    rest = _AFTER_CRC.pack(total, start_lsn, timeline)
    crc = crc32c.crc32c(payload, crc32c.crc32c(rest))
    return struct.pack("<I", crc) + rest + payload


def verify_record(buf, offset: int, expect_lsn: int) -> tuple[int, int] | None:
    """Check the record at ``buf[offset:]`` claims ``expect_lsn``, is complete
    in ``buf`` and its CRC matches. Returns (total_len, timeline) or None."""
    if len(buf) - offset < HEADER_SIZE:
        return None
    crc, total, lsn, tli = HEADER.unpack_from(buf, offset)
    if total < HEADER_SIZE or total > MAX_RECORD or lsn != expect_lsn:
        return None
    if len(buf) - offset < total:
        return None
    mv = memoryview(buf)[offset + 4: offset + total]
    if crc32c.crc32c(mv) != crc:
        return None
    return total, tli


def next_valid_record(buf: bytes, base_lsn: int) -> int | None:
    """The LSN of the first valid record that starts after the first byte of
    ``buf`` (which holds the log from ``base_lsn``), or None.

    Recovery's way to tell a damaged record *header* in the middle of the log
    from the log's end: after damage, valid records (each claiming the LSN it
    sits at) follow; after the end there are only zeros or the old bytes of a
    recycled segment, whose records claim other LSNs. Found by searching for
    the upper six bytes of a claimed LSN (C-speed ``find``), then checking
    the whole record."""
    end = base_lsn + len(buf)
    for high in range(base_lsn >> 16, (end >> 16) + 1):
        needle = high.to_bytes(6, "little")      # bytes 2..7 of the u64 LSN at header offset 8
        at = buf.find(needle, 11)
        while at != -1:
            off = at - 10
            lsn = base_lsn + off
            if (off + HEADER_SIZE <= len(buf) and HEADER.unpack_from(buf, off)[2] == lsn
                    and verify_record(buf, off, lsn) is not None):
                return lsn
            at = buf.find(needle, at + 1)
    return None


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    """PostgreSQL-style file name of segment ``segno``."""
    lsn = segno * segment_size
    return f"{timeline:08X}{lsn >> 32:08X}{(lsn & 0xFFFFFFFF) // segment_size:08X}"


def parse_segment_name(name: str, segment_size: int) -> tuple[int, int]:
    """(timeline, segno) of a segment file name; ValueError otherwise."""
    if not _SEG_RE.match(name):
        raise ValueError(f"not a WAL segment name: {name!r}")
    tli, hi, lo = int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16)
    return tli, ((hi << 32) + lo * segment_size) // segment_size


class ScanStop(enum.Enum):
    """Why ``scan`` stopped."""
    END = "end"                # consumed the whole buffer
    INCOMPLETE = "incomplete"  # the next record (or header) runs past the buffer
    INVALID = "invalid"        # the next record fails length, LSN stamp or CRC


def scan(buf, base_lsn: int) -> tuple[list[tuple[int, int, int]], int, ScanStop]:
    """Verify consecutive records at the start of ``buf`` (which starts at
    ``base_lsn``). Returns ([(offset, total_len, timeline)], stop_offset, why).
    One pass, no copies: the hot loop of recovery and replay."""
    out: list[tuple[int, int, int]] = []
    mv = memoryview(buf)
    n, off = len(buf), 0
    unpack, crc = HEADER.unpack_from, crc32c.crc32c
    while off < n:
        if n - off < HEADER_SIZE:
            return out, off, ScanStop.INCOMPLETE
        c, total, lsn, tli = unpack(buf, off)
        if total < HEADER_SIZE or total > MAX_RECORD or lsn != base_lsn + off:
            return out, off, ScanStop.INVALID
        if off + total > n:
            return out, off, ScanStop.INCOMPLETE
        if crc(mv[off + 4: off + total]) != c:
            return out, off, ScanStop.INVALID
        out.append((off, total, tli))
        off += total
    return out, off, ScanStop.END


def split_records(data, start_lsn: int) -> list[tuple[int, int, int]]:
    """Verify ``data`` is whole records from ``start_lsn``; return
    [(record_start, total_len, timeline)]. Raises CorruptWal on the first bad
    or incomplete record (so a caller can reject the whole chunk)."""
    recs, off, why = scan(data, start_lsn)
    if why is not ScanStop.END:
        raise CorruptWal(f"bad WAL record at {format_lsn(start_lsn + off)} ({why.value})")
    return [(start_lsn + o, total, tli) for o, total, tli in recs]
