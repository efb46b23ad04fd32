"""The in-memory key-value state that WAL records are replayed into.

Rule: the state is a pure function of the records applied, in order; the
snapshot bytes are a deterministic function of the state (keys sorted), so two
nodes that applied the same WAL serialize to identical bytes.

``KvState`` is thread-safe: readers (``get``) see a batch all or nothing.
``applied_lsn`` is the end LSN of the last record applied (the state reflects
every record before it).
"""
from __future__ import annotations

import struct
import threading

from walrus_ha.common.errors import CorruptWal

from .records import Batch, CheckpointMark, Delete, Noop, Put, Record, Skip, TimelineSwitch

_SNAP_HEAD = struct.Struct("<4sIQIQQ")   # magic, version, applied_lsn, timeline, term, count
_MAGIC = b"WKVS"
_U32 = struct.Struct("<I")


def snapshot_header(blob: bytes) -> tuple[int, int, int]:
    """(applied_lsn, timeline, term) of a snapshot without decoding it all."""
    try:
        magic, _, lsn, tli, term, _ = _SNAP_HEAD.unpack_from(blob)
    except struct.error:
        raise CorruptWal("state snapshot is truncated") from None
    if magic != _MAGIC:
        raise CorruptWal("bad state snapshot magic")
    return lsn, tli, term


class KvState:
    """A dict of bytes -> bytes plus the position and timeline it reflects."""

    def __init__(self, data: dict[bytes, bytes] | None = None, applied_lsn: int = 0,
                 timeline: int = 1, term: int = 0) -> None:
        self._data: dict[bytes, bytes] = dict(data or {})
        self._lock = threading.Lock()
        self.applied_lsn = applied_lsn
        self.timeline = timeline
        self.term = term

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""
        return self._data.get(key)

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> list[tuple[bytes, bytes]]:
        """A sorted copy of every (key, value)."""
        with self._lock:
            return sorted(self._data.items())

    def apply(self, record: Record, end_lsn: int) -> None:
        """Apply one record that ends at ``end_lsn``. Records must come in
        WAL order; a record ending at or before ``applied_lsn`` is ignored
        (idempotent replay)."""
        if end_lsn <= self.applied_lsn:
            return
        with self._lock:
            if isinstance(record, Put):
                self._data[record.key] = record.value
            elif isinstance(record, Delete):
                self._data.pop(record.key, None)
            elif isinstance(record, Batch):
                for op in record.ops:
                    if op.value is None:
                        self._data.pop(op.key, None)
                    else:
                        self._data[op.key] = op.value
            elif isinstance(record, TimelineSwitch):
                self.timeline = record.new_tli
                self.term = max(self.term, record.term)
            elif not isinstance(record, (CheckpointMark, Noop, Skip)):
                raise TypeError(f"not a WAL record: {record!r}")
            self.applied_lsn = end_lsn

    def snapshot(self) -> bytes:
        """Deterministic serialization (see ``from_snapshot``)."""
        with self._lock:     # copy under the lock (fast), sort outside it
            data = dict(self._data)
            head = _SNAP_HEAD.pack(_MAGIC, 1, self.applied_lsn, self.timeline, self.term, len(data))
        items = sorted(data.items())
        parts = [head]
        for key, value in items:
            parts += [_U32.pack(len(key)), key, _U32.pack(len(value)), value]
        return b"".join(parts)

    @classmethod
    def from_snapshot(cls, blob: bytes) -> KvState:
        """Inverse of ``snapshot``. Raises CorruptWal on malformed bytes."""
        try:
            magic, version, lsn, tli, term, count = _SNAP_HEAD.unpack_from(blob)
            if magic != _MAGIC or version != 1:
                raise ValueError("bad snapshot magic/version")
            mv, off, data = memoryview(blob), _SNAP_HEAD.size, {}
            for _ in range(count):
                (klen,) = _U32.unpack_from(mv, off)
                key = bytes(mv[off + 4: off + 4 + klen])
                off += 4 + klen
                (vlen,) = _U32.unpack_from(mv, off)
                value = bytes(mv[off + 4: off + 4 + vlen])
                off += 4 + vlen
                if len(key) != klen or len(value) != vlen:
                    raise ValueError("entry runs past the snapshot")
                data[key] = value
            if off != len(blob):
                raise ValueError("trailing bytes after snapshot")
        except (struct.error, ValueError) as exc:
            raise CorruptWal(f"malformed state snapshot: {exc}") from None
        return cls(data, lsn, tli, term)
