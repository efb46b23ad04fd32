"""Storage on real files: recovery, checkpoints + recycling, fallback,
base backup, promotion and rewind."""
from __future__ import annotations

import os

import pytest

from walrus_ha.common.errors import CorruptWal, NeedsReclone
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import Role
from walrus_ha.node.engine.embedded import checkpoint as ckpt
from walrus_ha.node.engine.embedded.records import Batch, BatchOp, Delete, Put
from walrus_ha.node.engine.embedded.storage import Storage, read_control
from walrus_ha.node.engine.embedded.timeline import find_divergence

CFG = EmbeddedConfig(segment_size=64 * 1024)


def _open(path) -> Storage:
    return Storage.open(str(path), CFG)


def _write(s: Storage, prefix: str, n: int, size: int = 60) -> dict[bytes, bytes]:
    expect = {}
    for i in range(n):
        k, v = f"{prefix}{i}".encode(), f"{prefix}-{i}-".encode() * (size // 8)
        s.put(k, v)
        expect[k] = v
    s.flush()
    return expect


def _ship(src: Storage, dst: Storage) -> None:
    pos = dst.wal.write_lsn
    while pos < src.wal.flush_lsn:
        pos = dst.receive(pos, src.wal.read_raw(pos, 32 * 1024))
    dst.flush()
    dst.replay_up_to(dst.wal.flush_lsn)


def _clone(src: Storage, path) -> Storage:
    bb = src.base_backup()
    return Storage.create_from_base(str(path), CFG, bb.snapshot, bb.history, bb.term, "src")


def test_bootstrap_reopen_keeps_state_and_control(tmp_path):
    s = _open(tmp_path)
    assert s.control.role is Role.PRIMARY and s.timeline == 1
    expect = _write(s, "k", 500)
    s.apply_local(Delete(b"k3"))
    s.apply_local(Batch((BatchOp(b"b1", b"x"), BatchOp(b"k4", None))))
    s.flush()
    s.set_control(term=4, upstream="")
    end = s.wal.write_lsn
    s.close()
    s = _open(tmp_path)
    del expect[b"k3"], expect[b"k4"]
    expect[b"b1"] = b"x"
    assert dict(s.state.items()) == expect
    assert s.replay_lsn == end and s.control.term == 4


def test_an_interrupted_bootstrap_or_clone_is_started_over(tmp_path):
    p = _open(tmp_path / "p")
    _write(p, "a", 100)
    os.makedirs(tmp_path / "s" / "wal")
    (tmp_path / "s" / "wal" / "FLOOR").write_text("12345\n")      # leftover, no control file
    s = _clone(p, tmp_path / "s")
    assert s.wal.oldest_lsn == p.wal.write_lsn
    os.unlink(tmp_path / "p" / "control")                          # as if bootstrap died late
    p.close()
    fresh = _open(tmp_path / "p")
    assert fresh.wal.write_lsn == 0 and len(fresh.state) == 0


def test_corrupt_control_file_is_refused(tmp_path):
    _open(tmp_path).close()
    path = tmp_path / "control"
    path.write_text(path.read_text().replace('"term": 0', '"term": 9'))
    with pytest.raises(CorruptWal):
        read_control(str(tmp_path))


def test_checkpoint_recycles_wal_and_recovery_starts_there(tmp_path):
    s = _open(tmp_path)
    expect = _write(s, "a", 3000)
    first = s.checkpoint()
    expect |= _write(s, "b", 3000)
    second = s.checkpoint()
    oldest_segments = s.wal.oldest_lsn
    assert oldest_segments <= first.redo_lsn              # WAL of the older checkpoint kept
    assert oldest_segments > 0                            # but segments below it recycled
    assert len(ckpt.list_checkpoints(str(tmp_path / "checkpoints"))) == 2
    expect |= _write(s, "c", 100)
    s.close()
    s = _open(tmp_path)
    assert dict(s.state.items()) == expect
    assert second.redo_lsn < s.replay_lsn


def test_slot_restart_lsn_holds_back_recycling(tmp_path):
    s = _open(tmp_path)
    _write(s, "a", 1000)
    slot_lsn = s.wal.write_lsn
    _write(s, "b", 6000)
    s.checkpoint(slot_min_lsn=slot_lsn)
    s.checkpoint(slot_min_lsn=slot_lsn)
    assert s.wal.oldest_lsn <= slot_lsn
    assert s.wal.read_raw(slot_lsn, 100)                  # a standby could still stream from there
    for i in range(2):
        _write(s, f"c{i}", 10)
        s.checkpoint()
    assert s.wal.oldest_lsn > slot_lsn


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    s = _open(tmp_path)
    expect = _write(s, "a", 2000)
    s.checkpoint()
    expect |= _write(s, "b", 2000)
    newest = s.checkpoint()
    expect |= _write(s, "c", 500)
    s.close()
    with open(newest.path, "r+b") as f:
        f.seek(os.path.getsize(newest.path) // 2)
        f.write(b"\xff\xff\xff")
    s = _open(tmp_path)
    assert dict(s.state.items()) == expect


def test_all_checkpoints_corrupt_replays_from_the_start_or_needs_reclone(tmp_path):
    s = _open(tmp_path / "a")
    expect = _write(s, "a", 300)
    s.checkpoint()
    s.close()
    for info in ckpt.list_checkpoints(str(tmp_path / "a" / "checkpoints")):
        with open(info.path, "r+b") as f:
            f.write(b"XXXX")
    s = _open(tmp_path / "a")                      # the log still begins at 0
    assert dict(s.state.items()) == expect
    clone = _clone(s, tmp_path / "b")              # a clone's log begins at its backup
    clone.close()
    for info in ckpt.list_checkpoints(str(tmp_path / "b" / "checkpoints")):
        os.unlink(info.path)
    with pytest.raises(NeedsReclone):
        _open(tmp_path / "b")


def test_base_backup_clone_streams_to_an_identical_state(tmp_path):
    p = _open(tmp_path / "p")
    _write(p, "a", 1500)
    p.checkpoint()
    sb = _clone(p, tmp_path / "s")
    assert sb.control.role is Role.STANDBY
    assert sb.wal.oldest_lsn == sb.wal.write_lsn == p.wal.write_lsn   # its WAL begins at the backup
    _write(p, "b", 1500)
    _ship(p, sb)
    assert sb.state.snapshot() == p.state.snapshot()
    sb.close()
    sb = _open(tmp_path / "s")
    assert sb.state.snapshot() == p.state.snapshot()


def test_promotion_switch_is_replayed_by_a_standby_with_its_history(tmp_path):
    p = _open(tmp_path / "p")
    _write(p, "a", 200)
    sb = _clone(p, tmp_path / "s")
    switch = p.switch_timeline(2, term=3, reason="test promote")
    _write(p, "b", 10)
    _ship(p, sb)
    assert sb.timeline == 2 and sb.history() == p.history()
    assert sb.history().end_of(1) == switch
    assert p.control.timeline == 2 and p.control.term == 3


def test_history_covers_switches_received_but_not_replayed(tmp_path):
    p = _open(tmp_path / "p")
    _write(p, "a", 50)
    sb = _clone(p, tmp_path / "s")
    _write(p, "b", 50)
    p.switch_timeline(2, term=2, reason="one")
    _write(p, "c", 50)
    p.switch_timeline(3, term=3, reason="two")
    pos = sb.wal.write_lsn
    while pos < p.wal.flush_lsn:
        pos = sb.receive(pos, p.wal.read_raw(pos, 4096))
    assert sb.timeline == 1 and sb.history() == p.history()
    assert not find_divergence(sb.history(), sb.wal.write_lsn, p.history()).diverged
    sb.replay_up_to(pos)
    assert sb.timeline == 3 and sb.history() == p.history()


def test_rewind_drops_the_divergent_tail_and_follows_the_new_primary(tmp_path):
    a = _open(tmp_path / "a")
    _write(a, "x", 2000)
    b = _clone(a, tmp_path / "b")
    _write(a, "y", 500)
    _ship(a, b)                              # b has everything a had so far
    lost = _write(a, "lost", 800)            # a's divergent tail, never shipped
    a.checkpoint()                           # even a checkpoint past the fork point
    b.switch_timeline(2, term=2, reason="failover")
    _write(b, "z", 300)
    b.apply_local(Delete(b"x1"))
    b.flush()

    div = find_divergence(a.history(), a.wal.write_lsn, b.history())
    assert div.diverged and div.common_timeline == 1
    a.rewind_to(div.fork_lsn)
    assert a.wal.write_lsn == div.fork_lsn and a.timeline == 1
    assert not any(a.get(k) for k in lost)
    _ship(b, a)
    assert a.state.snapshot() == b.state.snapshot()
    a.close()
    a = _open(tmp_path / "a")                # and it survives a restart
    assert a.state.snapshot() == b.state.snapshot() and a.timeline == 2


def test_rewind_below_retained_wal_needs_reclone(tmp_path):
    a = _open(tmp_path)
    _write(a, "x", 500)
    fork = a.wal.write_lsn
    for i in range(3):
        _write(a, f"y{i}", 3000)
        a.checkpoint()
    with pytest.raises(NeedsReclone):
        a.rewind_to(fork)
    assert a.get(b"y2_0") is None and a.get(b"y20") is not None   # untouched


def test_replay_is_incremental_and_capped(tmp_path):
    p = _open(tmp_path / "p")
    sb = _clone(p, tmp_path / "s")
    first = p.put(b"k1", b"1")
    p.put(b"k2", b"2")
    p.flush()
    pos = sb.receive(0, p.wal.read_raw(0, 1 << 20))
    assert sb.replay_up_to(first[1]) == first[1] and sb.get(b"k2") is None
    assert sb.replay_up_to(10**12) == pos and sb.get(b"k2") == b"2"
    assert p.apply_local(Put(b"k3", b"3"))[0] == pos
