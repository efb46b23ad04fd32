"""WAL record payloads of the embedded key-value engine: types and codec.

Rule: ``decode(encode(r)) == r`` for every record, and ``decode`` raises
``CorruptWal`` (never anything else) on bytes that are not a record. The WAL
frames and checksums payloads; this module only gives them meaning.

Payload layout: ``type:u8`` then, per type (little-endian)::

    PUT             klen:u32 key value
    DELETE          key
    BATCH           count:u32 then per op: delete:u8 klen:u32 key vlen:u32 value
    TIMELINE_SWITCH new_tli:u32 parent_tli:u32 switch_lsn:u64 term:u64 reason(utf-8)
    CHECKPOINT      redo_lsn:u64 timeline:u32
    NOOP            (nothing)
    SKIP            recovered_end:u64 then ``pad`` zero bytes
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from walrus_ha.common.errors import CorruptWal


class RecordType(enum.IntEnum):
    PUT = 1
    DELETE = 2
    BATCH = 3
    TIMELINE_SWITCH = 4
    CHECKPOINT = 5
    NOOP = 6
    SKIP = 7


@dataclass(frozen=True)
class Put:
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Delete:
    key: bytes


@dataclass(frozen=True)
class BatchOp:
    """One operation of a batch: ``value is None`` means delete."""
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class Batch:
    ops: tuple[BatchOp, ...]


@dataclass(frozen=True)
class TimelineSwitch:
    """First record of timeline ``new_tli``, which forked from ``parent_tli``
    at ``switch_lsn`` (= this record's start) when a node was promoted."""
    new_tli: int
    parent_tli: int
    switch_lsn: int
    term: int
    reason: str = ""


@dataclass(frozen=True)
class CheckpointMark:
    """Informational: a checkpoint with this redo LSN was taken."""
    redo_lsn: int
    timeline: int


@dataclass(frozen=True)
class Noop:
    pass


@dataclass(frozen=True)
class Skip:
    """Written by a primary that restarted after a crash, at the end of the
    WAL it recovered (``recovered_end``): ``pad`` zero bytes so that its new
    records start past any WAL it may have shipped ahead and then lost.
    Changes no state."""
    recovered_end: int
    pad: int


Record = Put | Delete | Batch | TimelineSwitch | CheckpointMark | Noop | Skip

_U32 = struct.Struct("<I")
_TLS = struct.Struct("<IIQQ")
_CKP = struct.Struct("<QI")
_U64 = struct.Struct("<Q")
SKIP_HEAD = 1 + _U64.size          # a SKIP payload before its padding: type + recovered_end


def is_skip(payload: bytes) -> bool:
    """Is this WAL payload a SKIP record? (Without decoding its padding.)"""
    return payload[:1] == b"\x07"


def encode(record: Record) -> bytes:
    """Serialize ``record`` to a WAL payload."""
    if isinstance(record, Put):
        return b"\x01" + _U32.pack(len(record.key)) + record.key + record.value
    if isinstance(record, Delete):
        return b"\x02" + record.key
    if isinstance(record, Batch):
        parts = [b"\x03", _U32.pack(len(record.ops))]
        for op in record.ops:
            value = b"" if op.value is None else op.value
            parts += [b"\x01" if op.value is None else b"\x00", _U32.pack(len(op.key)), op.key,
                      _U32.pack(len(value)), value]
        return b"".join(parts)
    if isinstance(record, TimelineSwitch):
        return (b"\x04" + _TLS.pack(record.new_tli, record.parent_tli, record.switch_lsn, record.term)
                + record.reason.encode("utf-8"))
    if isinstance(record, CheckpointMark):
        return b"\x05" + _CKP.pack(record.redo_lsn, record.timeline)
    if isinstance(record, Noop):
        return b"\x06"
    if isinstance(record, Skip):
        return b"\x07" + _U64.pack(record.recovered_end) + bytes(record.pad)
    raise TypeError(f"not a WAL record: {record!r}")


def encode_put(key: bytes, value: bytes) -> bytes:
    """Fast path for the commonest record (same bytes as ``encode(Put(...))``)."""
    return b"\x01" + _U32.pack(len(key)) + key + value


def decode(payload: bytes) -> Record:
    """Parse a WAL payload. Raises CorruptWal on anything malformed."""
    try:
        return _decode(memoryview(payload))
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptWal(f"malformed WAL payload: {exc}") from None


def _decode(mv: memoryview) -> Record:
    if not mv:
        raise ValueError("empty payload")
    kind = RecordType(mv[0])
    body = mv[1:]
    if kind is RecordType.PUT:
        (klen,) = _U32.unpack_from(body)
        if 4 + klen > len(body):
            raise ValueError("key runs past the payload")
        return Put(bytes(body[4:4 + klen]), bytes(body[4 + klen:]))
    if kind is RecordType.DELETE:
        return Delete(bytes(body))
    if kind is RecordType.BATCH:
        return Batch(_decode_ops(body))
    if kind is RecordType.TIMELINE_SWITCH:
        new, parent, lsn, term = _TLS.unpack_from(body)
        return TimelineSwitch(new, parent, lsn, term, bytes(body[_TLS.size:]).decode("utf-8"))
    if kind is RecordType.CHECKPOINT:
        if len(body) != _CKP.size:
            raise ValueError("bad checkpoint record length")
        return CheckpointMark(*_CKP.unpack(body))
    if kind is RecordType.SKIP:
        (end,) = _U64.unpack_from(body)
        if any(body[_U64.size:]):
            raise ValueError("SKIP padding is not zero")
        return Skip(end, len(body) - _U64.size)
    if len(body):
        raise ValueError("trailing bytes after NOOP")
    return Noop()


def _decode_ops(body: memoryview) -> tuple[BatchOp, ...]:
    (count,) = _U32.unpack_from(body)
    off, ops = 4, []
    for _ in range(count):
        flag = body[off]
        if flag not in (0, 1):
            raise ValueError("bad batch op flag")
        (klen,) = _U32.unpack_from(body, off + 1)
        key = bytes(body[off + 5: off + 5 + klen])
        off += 5 + klen
        (vlen,) = _U32.unpack_from(body, off)
        value = bytes(body[off + 4: off + 4 + vlen])
        if len(key) != klen or len(value) != vlen:
            raise ValueError("batch op runs past the payload")
        off += 4 + vlen
        ops.append(BatchOp(key, None if flag else value))
    if off != len(body):
        raise ValueError("trailing bytes after batch")
    return tuple(ops)
