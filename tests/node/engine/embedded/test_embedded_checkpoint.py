"""Checkpoint files: atomic write, checksum, fallback, pruning, rewind removal."""
from __future__ import annotations

import os

import pytest

from walrus_ha.common.errors import CorruptWal
from walrus_ha.node.engine.embedded import checkpoint as ckpt
from walrus_ha.node.engine.embedded.records import Put
from walrus_ha.node.engine.embedded.state import KvState


def _state(lsn: int, n: int = 3) -> KvState:
    s = KvState()
    for i in range(n):
        s.apply(Put(f"k{i}".encode(), f"v{lsn}".encode()), lsn - n + i + 1)
    return s


def test_write_then_read_roundtrips(tmp_path):
    info = ckpt.write_checkpoint(str(tmp_path), _state(100))
    assert info.redo_lsn == 100 and os.path.basename(info.path) == "ckpt-0000000000000064"
    assert ckpt.read_checkpoint(info).items() == _state(100).items()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "wrong-name"])
def test_damaged_checkpoint_is_refused_and_the_previous_one_used(tmp_path, damage):
    d = str(tmp_path)
    ckpt.write_checkpoint(d, _state(100))
    newest = ckpt.write_checkpoint(d, _state(200))
    raw = open(newest.path, "rb").read()
    if damage == "flip":
        raw = raw[:30] + bytes([raw[30] ^ 1]) + raw[31:]
    elif damage == "truncate":
        raw = raw[:-2]
    elif damage == "empty":
        raw = b""
    if damage == "wrong-name":     # a valid file under another LSN's name
        os.replace(newest.path, os.path.join(d, "ckpt-00000000000000FF"))
    else:
        open(newest.path, "wb").write(raw)
    with pytest.raises(CorruptWal):
        ckpt.read_checkpoint(ckpt.list_checkpoints(d)[0])
    state, info = ckpt.load_latest(d)
    assert info.redo_lsn == 100 and state.applied_lsn == 100


def test_bounds_prune_and_remove_after(tmp_path):
    d = str(tmp_path)
    for lsn in (100, 200, 300, 400):
        ckpt.write_checkpoint(d, _state(lsn))
    assert ckpt.load_latest(d, at_or_before=250)[1].redo_lsn == 200
    assert ckpt.load_latest(d, at_or_before=250, not_below=210) is None
    kept = ckpt.prune(d, 3)
    assert [c.redo_lsn for c in kept] == [400, 300, 200]
    ckpt.remove_after(d, 300)
    assert [c.redo_lsn for c in ckpt.list_checkpoints(d)] == [300, 200]
    assert ckpt.load_latest(str(tmp_path / "missing")) is None
