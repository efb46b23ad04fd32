"""The WAL on real files: framing, recovery of torn/corrupt tails, segments,
raw shipping, truncate/recycle, group commit and waiting."""
from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walrus_ha.common.errors import CorruptWal, EngineError, WalRemoved
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.engine.embedded.wal import (
    HEADER_SIZE,
    Wal,
    encode_record,
    next_valid_record,
    parse_segment_name,
    segment_name,
    verify_record,
)

SEG = 64 * 1024


def _wal(tmp_path, name="wal", **kw) -> Wal:
    return Wal.open(str(tmp_path / name), SEG, **kw)


def _fill(wal: Wal, n: int, size=lambda i: 50 + i % 200, tli: int = 1) -> list[tuple[int, int, bytes]]:
    out = []
    for i in range(n):
        payload = bytes([i % 251]) * size(i)
        s, e = wal.append(payload, tli)
        out.append((s, e, payload))
    wal.flush()
    return out


def _segment_path(wal: Wal, lsn: int) -> str:
    segno = lsn // wal.segment_size
    name = [n for n in wal.segment_files() if parse_segment_name(n, wal.segment_size)[1] == segno][0]
    return os.path.join(wal.directory, name)


def _flip(wal: Wal, lsn: int) -> None:
    path = _segment_path(wal, lsn)
    with open(path, "r+b") as f:
        f.seek(lsn % wal.segment_size)
        b = f.read(1)
        f.seek(lsn % wal.segment_size)
        f.write(bytes([b[0] ^ 0x5A]))


# ----------------------------------------------------------------- framing
def test_record_framing_roundtrip_and_checks():
    rec = encode_record(1000, 3, b"hello")
    assert len(rec) == HEADER_SIZE + 5
    assert verify_record(rec, 0, 1000) == (len(rec), 3)
    assert verify_record(rec, 0, 1001) is None                      # wrong LSN stamp
    assert verify_record(rec[:-1], 0, 1000) is None                 # torn
    assert verify_record(bytes(len(rec)), 0, 1000) is None          # zeroes
    bad = bytearray(rec)
    bad[-1] ^= 1
    assert verify_record(bytes(bad), 0, 1000) is None               # CRC


@pytest.mark.parametrize("tli,lsn", [(1, 0), (2, SEG * 5), (0x1F, (7 << 32) + 3 * SEG)])
def test_segment_names_are_postgres_style(tli, lsn):
    name = segment_name(tli, lsn // SEG, SEG)
    assert len(name) == 24 and name[:8] == f"{tli:08X}" and name[8:16] == f"{lsn >> 32:08X}"
    assert parse_segment_name(name, SEG) == (tli, lsn // SEG)


# ----------------------------------------------------------------- recovery
def test_reopen_finds_every_flushed_record(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 2000)
    end = wal.write_lsn
    assert len(wal.segment_files()) > 3                      # spans several segments
    wal.close()
    wal = _wal(tmp_path)
    assert wal.write_lsn == wal.flush_lsn == end
    got = [(r.start, r.end, r.payload) for r in wal.iter_records(0)]
    assert got == recs


def test_records_span_segment_boundaries(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 40, size=lambda i: 7000)
    spanning = [(s, e) for s, e, _ in recs if s // SEG != (e - 1) // SEG]
    assert spanning
    wal.close()
    wal = _wal(tmp_path)
    assert [r.payload for r in wal.iter_records(0)] == [p for _, _, p in recs]


def test_torn_tail_is_truncated_and_zeroed(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 100)
    last_start = recs[-1][0]
    path = _segment_path(wal, last_start)
    wal.close()
    with open(path, "r+b") as f:                      # tear the last record
        f.seek((recs[-1][1] - 3) % SEG)
        f.write(b"\0\0\0")
    wal = _wal(tmp_path)
    assert wal.write_lsn == last_start
    s, e = wal.append(b"new", 1)
    wal.flush()
    wal.close()
    wal = _wal(tmp_path)
    assert [r.payload for r in wal.iter_records(0)][-1] == b"new"
    assert wal.write_lsn == e


def test_corrupt_byte_in_the_middle_stops_replay_there(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 3000)
    victim = recs[1500]
    assert len(wal.segment_files()) >= 3
    _flip(wal, victim[0] + HEADER_SIZE + 2)
    wal.close()
    wal = _wal(tmp_path)
    assert wal.write_lsn == victim[0]
    assert [r.payload for r in wal.iter_records(0)] == [p for _, _, p in recs[:1500]]
    # later segments are gone and the rest of this one is zero: nothing old comes back
    assert max(parse_segment_name(n, SEG)[1] for n in wal.segment_files()) == victim[0] // SEG
    wal.append(b"x" * 10, 1)
    wal.flush()
    wal.close()
    wal = _wal(tmp_path)
    assert len(list(wal.iter_records(0))) == 1501


def test_start_lsn_below_oldest_is_refused(tmp_path):
    wal = _wal(tmp_path)
    _fill(wal, 3000)
    keep = wal.write_lsn - 10
    keep = [r.start for r in wal.iter_records(0) if r.start <= keep][-1]
    assert wal.recycle(keep) > 0
    wal.close()
    with pytest.raises(EngineError):
        _wal(tmp_path, start_lsn=0)
    wal = _wal(tmp_path, start_lsn=keep)
    assert wal.write_lsn > keep


# ----------------------------------------------------------------- shipping
def test_read_raw_then_append_raw_makes_a_byte_identical_copy(tmp_path):
    src = _wal(tmp_path, "src")
    _fill(src, 1500, size=lambda i: 10 + (i * 37) % 3000)
    dst = _wal(tmp_path, "dst")
    pos = 0
    while pos < src.flush_lsn:
        chunk = src.read_raw(pos, 5000)
        assert chunk
        pos = dst.append_raw(pos, chunk)
    dst.flush()
    assert dst.write_lsn == src.write_lsn
    for a, b in zip(src.segment_files(), dst.segment_files()):
        assert a == b
        with open(os.path.join(src.directory, a), "rb") as fa, open(os.path.join(dst.directory, b), "rb") as fb:
            assert fa.read() == fb.read()


def test_read_raw_returns_whole_records_and_stops_at_flush(tmp_path):
    wal = _wal(tmp_path)
    s1, e1 = wal.append(b"a" * 100, 1)
    wal.flush()
    s2, e2 = wal.append(b"b" * 100, 1)                 # written, not flushed
    assert wal.read_raw(0, 10) == wal.read_raw(0, 1 << 20)  # one whole record even if > max
    assert len(wal.read_raw(0, 1 << 20)) == e1
    assert wal.read_raw(e1, 1 << 20) == b""
    assert len(wal.read_raw(e1, 1 << 20, limit_lsn=e2)) == e2 - e1
    with pytest.raises(CorruptWal):
        wal.read_raw(3, 100, limit_lsn=e2)             # not a record boundary


def test_append_raw_rejects_bad_chunks_and_writes_nothing(tmp_path):
    src = _wal(tmp_path, "src")
    _fill(src, 10)
    chunk = src.read_raw(0, 1 << 20)
    dst = _wal(tmp_path, "dst")
    bad = bytearray(chunk)
    bad[len(chunk) - 5] ^= 0xFF                        # last record corrupt
    with pytest.raises(CorruptWal):
        dst.append_raw(0, bytes(bad))
    with pytest.raises(CorruptWal):
        dst.append_raw(0, chunk[:-1])                  # ends mid-record
    with pytest.raises(CorruptWal):
        dst.append_raw(len(chunk), src.read_raw(0, 1))  # gap
    assert dst.write_lsn == 0 and dst.segment_files() == []
    assert dst.append_raw(0, chunk) == len(chunk)


# ------------------------------------------------------- truncate / recycle
def test_truncate_drops_the_tail_durably(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 2000)
    cut = recs[700][0]
    wal.truncate(cut)
    assert wal.write_lsn == wal.flush_lsn == cut
    assert len(list(wal.iter_records(0))) == 700
    wal.append(b"z", 2)
    wal.flush()
    wal.close()
    wal = _wal(tmp_path)
    got = list(wal.iter_records(0))
    assert len(got) == 701 and got[-1].payload == b"z" and got[-1].timeline == 2
    assert wal.last_timeline == 2


def test_recycle_removes_only_whole_segments_below_and_reuses_spares(tmp_path):
    wal = _wal(tmp_path)
    _fill(wal, 3000)
    before = wal.segment_files()
    keep = [r.start for r in wal.iter_records(0) if r.start < 2 * SEG + 100][-1]
    assert wal.recycle(keep) == 2
    assert wal.oldest_lsn == 2 * SEG
    assert wal.segment_files() == before[2:]
    spare_inodes = {os.stat(os.path.join(wal.directory, n)).st_ino
                    for n in os.listdir(wal.directory) if n.startswith("spare-")}
    assert spare_inodes
    with pytest.raises(WalRemoved):                    # a standby there needs a re-clone
        wal.read_raw(0, 100)
    recs = _fill(wal, 1000)                            # new segments come from spares
    segment_inodes = {os.stat(os.path.join(wal.directory, n)).st_ino for n in wal.segment_files()}
    assert spare_inodes <= segment_inodes
    wal.close()
    wal = _wal(tmp_path, start_lsn=keep)
    assert [r.payload for r in wal.iter_records(recs[0][0])] == [p for _, _, p in recs]


def test_recycled_spare_bytes_never_look_like_records(tmp_path):
    wal = _wal(tmp_path)
    _fill(wal, 3000)
    wal.recycle(wal.write_lsn)                         # everything but the current segment
    end = wal.write_lsn
    next_seg = (end // SEG + 1) * SEG
    while wal.write_lsn < next_seg + 10:               # cross into a spare
        wal.append(b"q" * 300, 1)
    wal.flush()
    tail_start = wal.write_lsn
    wal.close()
    wal = Wal.open(wal.directory, SEG, start_lsn=end)
    assert wal.write_lsn == tail_start                 # stale spare content was not taken as WAL


# ------------------------------------------------------- group commit / waits
def test_concurrent_writers_all_become_durable(tmp_path):
    wal = _wal(tmp_path)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for i in range(200):
            payload = f"{t}:{i}".encode()
            _, end = wal.append(payload, 1)
            assert wal.flush(end) >= end
            with lock:
                results.append((end, payload))

    ts = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wal.close()
    wal = _wal(tmp_path)
    on_disk = {r.end: r.payload for r in wal.iter_records(0)}
    assert len(on_disk) == 16 * 200
    assert all(on_disk[end] == p for end, p in results)


def test_next_segment_is_prepared_in_the_background(tmp_path):
    wal = _wal(tmp_path)
    while wal.write_lsn < SEG // 2:
        wal.append(b"p" * 500, 1)
    deadline = time.monotonic() + 30
    while not [n for n in os.listdir(wal.directory) if n.startswith("spare-") and not n.endswith(".tmp")]:
        assert time.monotonic() < deadline, "no spare segment was prepared"
        time.sleep(0.01)
    spare = [n for n in os.listdir(wal.directory) if n.startswith("spare-") and not n.endswith(".tmp")][0]
    ino = os.stat(os.path.join(wal.directory, spare)).st_ino
    while wal.write_lsn < SEG + 10:
        wal.append(b"p" * 500, 1)
    assert os.stat(_segment_path(wal, SEG)).st_ino == ino
    wal.flush()
    wal.close()


def test_a_failed_fsync_makes_the_wal_refuse_work_until_reopened(tmp_path, monkeypatch):
    wal = _wal(tmp_path)
    _, end = wal.append(b"a", 1)
    wal.flush()

    def boom(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", boom)
    wal.append(b"b", 1)
    with pytest.raises(EngineError):
        wal.flush()
    monkeypatch.undo()
    with pytest.raises(EngineError):       # even though fsync would work again
        wal.flush()
    with pytest.raises(EngineError):
        wal.append(b"c", 1)
    with pytest.raises(EngineError) as err:            # a sender must not tell its standby to re-clone
        wal.read_raw(0, 100)
    assert not isinstance(err.value, WalRemoved)
    wal.close()
    wal = _wal(tmp_path)
    assert [r.payload for r in wal.iter_records(0)][0] == b"a"


def test_truncate_releases_flush_waiters_with_a_lower_target(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 10)
    _, end = wal.append(b"unflushed", 1)
    wal.truncate(recs[5][0])
    assert wal.flush(end) == recs[5][0]


def test_wait_for_write_wakes_on_append(tmp_path):
    wal = _wal(tmp_path)
    woke = threading.Event()

    def waiter():
        if wal.wait_for_write(0, 30):
            woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    wal.append(b"x", 1)
    t.join(30)
    assert woke.is_set()
    assert not wal.wait_for_write(wal.write_lsn, 0.01)
    assert not wal.wait_for_flush(0, 0.01)
    wal.flush()
    assert wal.wait_for_flush(0, 0.01)


# ------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=3000), min_size=1, max_size=40),
       data=st.data())
def test_any_single_byte_corruption_is_detected(tmp_path_factory, payloads, data):
    d = tmp_path_factory.mktemp("wal")
    wal = Wal.open(str(d), SEG)
    recs = [wal.append(p, 1) for p in payloads]
    wal.flush()
    pos = data.draw(st.integers(0, wal.write_lsn - 1))
    victim = next(i for i, (s, e) in enumerate(recs) if s <= pos < e)
    _flip(wal, pos)
    wal.close()
    wal = Wal.open(str(d), SEG)
    assert wal.write_lsn == recs[victim][0]
    assert [r.payload for r in wal.iter_records(0)] == payloads[:victim]
    wal.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.tuples(st.binary(max_size=5000), st.integers(1, 5)), max_size=30))
def test_any_sequence_of_records_roundtrips(tmp_path_factory, payloads):
    d = tmp_path_factory.mktemp("wal")
    wal = Wal.open(str(d), SEG)
    for p, tli in payloads:
        wal.append(p, tli)
    wal.flush()
    wal.close()
    wal = Wal.open(str(d), SEG)
    assert [(r.payload, r.timeline) for r in wal.iter_records(0)] == payloads
    wal.close()


# ------------------------------------------------------- damage reporting
def test_recovery_reports_damaged_wal_but_not_a_normal_end(tmp_path):
    wal = _wal(tmp_path)
    recs = _fill(wal, 3000)
    end = wal.write_lsn
    wal.close()
    wal = _wal(tmp_path)
    assert wal.repairs == []                            # a clean end: zeros after the last record
    victim = recs[1500]
    _flip(wal, victim[0] + HEADER_SIZE + 2)
    wal.close()
    wal = _wal(tmp_path)
    assert wal.write_lsn == victim[0]                   # the cut is unchanged
    assert len(wal.repairs) == 1
    assert wal.repairs[0].startswith(f"dropped {format_lsn(victim[0])}..{format_lsn(end)} "
                                     f"({end - victim[0]} bytes)")
    wal.close()
    wal = _wal(tmp_path)
    assert wal.repairs == []                            # reported once: the range is gone now


@pytest.mark.parametrize("field,at", [("total_len", 4), ("lsn", 8), ("lsn high bytes", 13), ("crc", 0)])
def test_recovery_reports_a_damaged_record_header(tmp_path, field, at):
    """Bytes flipped in a record's header (its length or the LSN it claims)
    make it look like no record at all, as after the end of the log: the
    valid records that follow tell it apart, so it is reported too."""
    wal = _wal(tmp_path)
    recs = _fill(wal, 3000)
    end = wal.write_lsn
    victim = recs[1500]
    _flip(wal, victim[0] + at)
    wal.close()
    wal = _wal(tmp_path)
    assert wal.write_lsn == victim[0]                   # cut at the damaged record, as before
    assert len(wal.repairs) == 1, field
    assert wal.repairs[0].startswith(f"dropped {format_lsn(victim[0])}..{format_lsn(end)} "), wal.repairs


def test_next_valid_record_finds_records_after_damage_only():
    recs, lsn = [], 70_000                              # above 64 KiB: the LSN's upper bytes are not zero
    buf = b""
    for i in range(20):
        r = encode_record(lsn + len(buf), 1, bytes([i]) * (30 + i))
        recs.append(lsn + len(buf))
        buf += r
    assert next_valid_record(buf, lsn) == recs[1]         # the first record itself does not count
    damaged = bytearray(buf)
    damaged[recs[1] - lsn + 9] ^= 0xFF                   # record 1's LSN claim is damaged
    assert next_valid_record(bytes(damaged[recs[1] - lsn:]), recs[1]) == recs[2]
    assert next_valid_record(bytes(4096), lsn) is None   # zeros: the end of the log
    assert next_valid_record(buf, lsn + 64) is None     # recycled bytes: claims are not their positions
    assert next_valid_record(buf[5:], lsn + 5) == recs[1]


def test_recycled_spare_bytes_are_not_reported_as_damage(tmp_path):
    wal = _wal(tmp_path)
    _fill(wal, 3000)
    wal.recycle(wal.write_lsn)
    end = wal.write_lsn
    next_seg = (end // SEG + 1) * SEG
    while wal.write_lsn < next_seg + 10:               # cross into a spare holding old records
        wal.append(b"q" * 300, 1)
    wal.flush()
    wal.close()
    wal = Wal.open(wal.directory, SEG, start_lsn=end)
    assert wal.repairs == []
