"""Checkpoints: durable snapshots of the state and the WAL position they reflect.

Rule: a checkpoint file is either absent or complete and checksummed. It is
written to a temporary name, fsynced, renamed into place and the directory
fsynced; readers verify the CRC and fall back to an older checkpoint when the
newest is corrupt. The caller must flush the WAL up to ``state.applied_lsn``
before writing a checkpoint (so the redo LSN never points past durable WAL).

Files: ``<dir>/ckpt-<redo_lsn as 16 hex>``; layout::

    magic "WCKP" | crc32c:u32 (of the snapshot) | length:u64 | KvState snapshot
"""
from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

import crc32c

from walrus_ha.common.errors import CorruptWal

from .segments import fsync_dir
from .state import KvState, snapshot_header

_HEAD = struct.Struct("<4sIQ")
_MAGIC = b"WCKP"
_NAME_RE = re.compile(r"^ckpt-([0-9A-F]{16})$")


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint on disk: the state reflects every record before ``redo_lsn``."""
    redo_lsn: int
    path: str


def list_checkpoints(directory: str) -> list[CheckpointInfo]:
    """Checkpoint files by redo LSN, newest first (not verified)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _NAME_RE.match(name)
        if m:
            found.append(CheckpointInfo(int(m.group(1), 16), os.path.join(directory, name)))
    return sorted(found, key=lambda c: c.redo_lsn, reverse=True)


def write_checkpoint(directory: str, state: KvState) -> CheckpointInfo:
    """Atomically and durably write ``state`` as a checkpoint."""
    return write_snapshot(directory, state.snapshot())


def write_snapshot(directory: str, blob: bytes) -> CheckpointInfo:
    """Atomically and durably write a ``KvState.snapshot()`` as a checkpoint."""
    os.makedirs(directory, exist_ok=True)
    redo = snapshot_lsn(blob)
    path = os.path.join(directory, f"ckpt-{redo:016X}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(_HEAD.pack(_MAGIC, crc32c.crc32c(blob), len(blob)))
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return CheckpointInfo(redo, path)


def snapshot_lsn(blob: bytes) -> int:
    """The applied LSN recorded in a state snapshot."""
    return snapshot_header(blob)[0]


def read_checkpoint(info: CheckpointInfo) -> KvState:
    """Load and verify one checkpoint. Raises CorruptWal if it is damaged."""
    try:
        with open(info.path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CorruptWal(f"checkpoint {info.path} unreadable: {exc}") from None
    if len(raw) < _HEAD.size:
        raise CorruptWal(f"checkpoint {info.path} is truncated")
    magic, crc, length = _HEAD.unpack_from(raw)
    blob = raw[_HEAD.size:]
    if magic != _MAGIC or length != len(blob) or crc32c.crc32c(blob) != crc:
        raise CorruptWal(f"checkpoint {info.path} failed its checksum")
    state = KvState.from_snapshot(blob)
    if state.applied_lsn != info.redo_lsn:
        raise CorruptWal(f"checkpoint {info.path} holds LSN {state.applied_lsn}, not its name's")
    return state


def load_latest(directory: str, at_or_before: int | None = None,
                not_below: int = 0) -> tuple[KvState, CheckpointInfo] | None:
    """The newest checkpoint that verifies, optionally with ``redo_lsn <=
    at_or_before`` and ``>= not_below``; None if there is none."""
    for info in list_checkpoints(directory):
        if at_or_before is not None and info.redo_lsn > at_or_before:
            continue
        if info.redo_lsn < not_below:
            break
        try:
            return read_checkpoint(info), info
        except CorruptWal:
            continue
    return None


def prune(directory: str, keep: int, also_at_or_below: int | None = None) -> list[CheckpointInfo]:
    """Delete all but the ``keep`` newest checkpoints, and the newest one
    with ``redo_lsn <= also_at_or_below``; return the kept ones."""
    infos = list_checkpoints(directory)
    kept = infos[:keep]
    if also_at_or_below is not None and not any(i.redo_lsn <= also_at_or_below for i in kept):
        kept += [i for i in infos[keep:] if i.redo_lsn <= also_at_or_below][:1]
    gone = [i for i in infos if i not in kept]
    for info in gone:
        os.unlink(info.path)
    if gone:
        fsync_dir(directory)
    return kept


def remove_after(directory: str, lsn: int) -> None:
    """Durably delete checkpoints whose redo LSN is past ``lsn`` (rewind)."""
    gone = [i for i in list_checkpoints(directory) if i.redo_lsn > lsn]
    for info in gone:
        os.unlink(info.path)
    if gone:
        fsync_dir(directory)
