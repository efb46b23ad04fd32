"""Shipping WAL ahead of the primary's flush, and what makes it safe.

A lone synchronous commit lets the WAL senders ship its record before the
primary's fdatasync, so a standby may hold up to ``SHIP_AHEAD`` bytes its
primary has not made durable. If the primary then loses them in an OS
crash, it must not write different records at those LSNs that a standby
would take as a continuation of what it holds. These tests cover the
pieces (mid-record limits, record-start checks, the SKIP record after an
unclean restart, rewinds that land inside a record, the standby's
checkpoint retention) and, with real engine processes, the two ways a lost
tail comes back: the same primary restarts, or the standby holding the tail
is promoted and the old primary follows it.

An OS crash cannot be staged here, and a SIGKILL keeps the page cache, so
the process tests kill the primary and then cut its WAL back by hand: the
state a power loss would leave behind.
"""
from __future__ import annotations

import os

import pytest

from embedded_engine_procs import has, wait_for
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import Role
from walrus_ha.node.engine.embedded import checkpoint as ckpt
from walrus_ha.node.engine.embedded.records import Skip
from walrus_ha.node.engine.embedded.sender import REWIND_MARK, SenderRefused, StartPoint, StartRequest, check_start
from walrus_ha.node.engine.embedded.storage import Storage
from walrus_ha.node.engine.embedded.timeline import TimelineHistory
from walrus_ha.node.engine.embedded.wal import HEADER_SIZE, SHIP_AHEAD, Wal
from walrus_ha.protos import node_agent_pb2, store_pb2

CFG = EmbeddedConfig(segment_size=64 * 1024)
ON = store_pb2.COMMIT_ON


def _put(s: Storage, key: bytes, value: bytes = b"v" * 40) -> tuple[int, int]:
    start, end = s.put(key, value)
    s.flush()
    return start, end


# ------------------------------------------------------------------ pieces
def test_read_raw_stops_before_a_record_that_crosses_the_limit(tmp_path):
    wal = Wal.open(str(tmp_path / "wal"), CFG.segment_size)
    _, e1 = wal.append(b"a" * 100, 1)
    _, e2 = wal.append(b"b" * 5000, 1)
    wal.flush()
    # max_bytes smaller than the record would normally send it whole...
    assert len(wal.read_raw(e1, 10)) == e2 - e1
    # ...but never past a limit that falls inside it
    assert wal.read_raw(e1, 10, limit_lsn=e1 + 200) == b""
    assert len(wal.read_raw(0, 1 << 20, limit_lsn=e2 - 1)) == e1


def test_is_record_start(tmp_path):
    wal = Wal.open(str(tmp_path / "wal"), CFG.segment_size)
    _, e1 = wal.append(b"a" * 100, 1)
    _, e2 = wal.append(b"b" * 100, 1)
    assert wal.is_record_start(0) and wal.is_record_start(e1) and wal.is_record_start(e2)
    assert not wal.is_record_start(1)
    assert not wal.is_record_start(e1 + HEADER_SIZE)
    assert not wal.is_record_start(e2 + 1)           # past the end


def test_skip_record_puts_the_next_record_past_the_ship_ahead_window(tmp_path):
    s = Storage.open(str(tmp_path / "d"), CFG)
    _put(s, b"k")
    end = s.wal.write_lsn
    lost_from, skip_end = s.skip_lost_tail()
    assert lost_from == end and skip_end > end + SHIP_AHEAD
    assert s.wal.flush_lsn == skip_end                 # durable before anything new
    assert s.get(b"k") is not None                     # changes no state
    recs = list(s.wal.iter_records(end))
    assert len(recs) == 1
    # every LSN a standby could have been shipped past ``end`` lies inside it
    assert not any(s.wal.is_record_start(lsn) for lsn in range(end + 1, end + SHIP_AHEAD + 1, 97))
    start, _ = _put(s, b"next")
    assert start == skip_end
    s.close()
    s = Storage.open(str(tmp_path / "d"), CFG)         # and it survives recovery
    assert s.get(b"next") is not None and s.wal.write_lsn > skip_end
    s.close()


def test_skip_record_round_trips_and_rejects_non_zero_padding():
    from walrus_ha.common.errors import CorruptWal
    from walrus_ha.node.engine.embedded.records import decode, encode
    rec = Skip(12345, 300)
    assert decode(encode(rec)) == rec
    with pytest.raises(CorruptWal):
        decode(encode(rec)[:-1] + b"\x01")


def test_rewind_to_an_lsn_inside_a_record_lands_on_its_start(tmp_path):
    s = Storage.open(str(tmp_path / "d"), CFG)
    _, e1 = _put(s, b"a")
    s2, e2 = _put(s, b"b", b"x" * 500)
    _put(s, b"c")
    end = s.rewind_to(s2 + 100)                        # inside b's record
    assert end == s2 == e1 and s.wal.write_lsn == s2
    assert s.get(b"a") is not None and s.get(b"b") is None and s.get(b"c") is None
    assert s.replay_lsn == s2
    start, _ = _put(s, b"d")                           # the log continues from there
    assert start == s2
    s.close()


def test_standby_keeps_a_checkpoint_below_its_unconfirmed_tail(tmp_path):
    """A standby's state may include the last SHIP_AHEAD bytes; a rewind
    below them needs a checkpoint there, however many checkpoints follow."""
    s = Storage.open(str(tmp_path / "d"), CFG)
    s.set_control(role=Role.STANDBY)
    for i in range(400):                               # well past SHIP_AHEAD
        s.put(b"k%d" % i, b"v" * 60)
    s.flush()
    s.checkpoint()
    for i in range(4):                                 # small steps inside the window
        _put(s, b"t%d" % i)
        s.checkpoint()
    redos = [c.redo_lsn for c in ckpt.list_checkpoints(str(tmp_path / "d" / "checkpoints"))]
    assert len(redos) == 3                             # the two newest, and one below the window
    assert min(redos) <= s.wal.write_lsn - SHIP_AHEAD
    target = s.wal.write_lsn - SHIP_AHEAD
    s.rewind_to(target)                                # what a refused standby does
    assert target - 200 < s.replay_lsn == s.wal.write_lsn <= target
    assert s.get(b"t0") is None and s.get(b"k0") is not None
    s.close()


def test_primary_prunes_as_before(tmp_path):
    s = Storage.open(str(tmp_path / "d"), CFG)         # a primary: its checkpoints are durable
    for i in range(4):
        _put(s, b"t%d" % i)
        s.checkpoint()
    assert len(ckpt.list_checkpoints(str(tmp_path / "d" / "checkpoints"))) == 2
    s.close()


def test_check_start_sends_a_standby_inside_a_skip_record_to_its_start():
    args = (StartRequest("b", 500, 1, 0), 0, 1000, 0, None, TimelineHistory(1, ()))
    with pytest.raises(SenderRefused) as err:
        check_start(*args, locate=lambda: StartPoint(False, 400))
    assert err.value.rewind_to == 400 and not err.value.needs_reclone and REWIND_MARK in str(err.value)
    # inside some other record: corrupt here or another history; never a rewind
    with pytest.raises(SenderRefused) as err:
        check_start(*args, locate=lambda: StartPoint(False, None))
    assert err.value.rewind_to is None and not err.value.needs_reclone and REWIND_MARK not in str(err.value)
    check_start(*args, locate=lambda: StartPoint(True))


def test_record_holding_and_skip_holding(tmp_path):
    s = Storage.open(str(tmp_path / "d"), CFG)
    s1, e1 = _put(s, b"a", b"x" * 300)
    assert s.wal.record_holding(s1 + 1, 1000).start == s1
    assert s.wal.record_holding(e1 - 1, 1000).end == e1
    assert s.wal.record_holding(s1, 1000) is None                # a record start is inside nothing
    assert s.wal.record_holding(e1 - 1, 100) is None             # longer than max_len
    assert s.skip_holding(s1 + 1) is None                        # inside a record, not a SKIP
    lost_from, end = s.skip_lost_tail()
    for lsn in (lost_from + 1, lost_from + HEADER_SIZE, lost_from + SHIP_AHEAD, end - 1):
        assert s.skip_holding(lsn) == lost_from
    assert s.skip_holding(lost_from) is None and s.skip_holding(end) is None
    s.close()


def test_a_crash_loop_keeps_the_checkpoint_below_the_first_skip(tmp_path):
    """Checkpoints after nothing but SKIP records reuse the last one, so a
    primary that crashes again and again can still rewind below E."""
    d = str(tmp_path / "d")
    s = Storage.open(d, CFG)
    for i in range(50):
        _put(s, b"k%d" % i)
    s.checkpoint()
    lost_from, _ = s.skip_lost_tail()
    s.checkpoint()
    s.close()
    for _ in range(3):                                  # crash, restart, skip, checkpoint
        s = Storage.open(d, CFG)
        s.skip_lost_tail()
        s.checkpoint()
        s.close()
    s = Storage.open(d, CFG)
    assert s.rewind_to(lost_from + 100) == lost_from    # inside the first SKIP
    assert s.get(b"k49") is not None
    _put(s, b"new")                                     # and more real work checkpoints again
    assert s.checkpoint().redo_lsn == s.replay_lsn
    s.close()


# --------------------------------------------------------- real processes
def _lose_tail(data_dir: str, lsn: int) -> None:
    """What an OS crash leaves when the page cache held WAL past ``lsn``."""
    wal = Wal.open(os.path.join(data_dir, "wal"), EmbeddedConfig().segment_size)
    assert wal.is_record_start(lsn) and wal.write_lsn > lsn
    wal.truncate(lsn)
    wal.close()


def _sync_pair(cluster):
    a = cluster.engine("a", "--sync", "FIRST 1 (b)", "--synchronous-commit", "on", "--checkpoint-interval", "3600")
    b = cluster.engine("b", "--upstream", a.upstream_arg, "--checkpoint-interval", "3600")
    wait_for(lambda: a.status().standbys, what="b connected")
    for i in range(30):
        a.put(b"k%d" % i, b"v%d" % i, level=ON)
    cut = a.status().flush_lsn
    for i in range(3):                          # the tail the primary will lose
        a.put(b"tail-%d" % i, b"t", level=ON)
    end = a.status().flush_lsn
    assert 0 < end - cut <= SHIP_AHEAD
    wait_for(lambda: b.status().flush_lsn >= end, what="b holds the tail")
    assert has(b, b"tail-2") == b"t"
    a.kill()
    _lose_tail(a.data_dir, cut)
    return a, b, cut, end


def test_restarted_primary_skips_its_lost_tail_and_the_standby_rewinds(cluster):
    a, b, cut, end = _sync_pair(cluster)
    a.start()
    st = a.status()
    assert st.write_lsn > cut + SHIP_AHEAD              # the SKIP record after the crash
    a.put(b"after", b"restart", level=ON)               # needs b: so b streams again
    wait_for(lambda: has(b, b"after") == b"restart", what="b streams from the restarted primary")
    for i in range(3):                                  # b dropped what a lost, like a
        assert has(a, b"tail-%d" % i) is None
        assert has(b, b"tail-%d" % i) is None
    assert has(b, b"k29") == b"v29"
    a_st, b_st = a.status(), b.status()
    assert b_st.flush_lsn == a_st.flush_lsn and b_st.timeline == a_st.timeline == 1
    log = open(b.log_path).read()
    assert "walreceiver_rewind_tail" in log and REWIND_MARK in log
    assert f"to={format_lsn(cut)} " in log          # exactly to the SKIP's start: nothing durable dropped


def test_clean_restart_writes_no_skip_record(cluster):
    a = cluster.engine("a", "--checkpoint-interval", "3600")
    a.put(b"k", b"v")
    end = a.status().write_lsn
    a.stop()                                             # SIGTERM: a clean stop
    a.start()
    assert a.status().write_lsn == end
    a.kill()
    a.start()
    assert a.status().write_lsn > end + SHIP_AHEAD


def test_old_primary_that_lost_its_tail_rewinds_inside_its_skip_and_follows(cluster):
    """b holds the tail a lost and is promoted; a restarts (writing a SKIP
    over those LSNs), then follows b: b's fork point lies inside a's SKIP
    record, so a rewinds to where its WAL ends intact and streams b's copy."""
    a, b, cut, end = _sync_pair(cluster)
    reply = b.control().Promote(node_agent_pb2.PromoteRequest(term=2), timeout=30)
    assert reply.status.engine.timeline == 2
    b.put(b"after", b"promotion")
    a.start()
    assert a.status().write_lsn > cut + SHIP_AHEAD
    rj = a.control().Rejoin(node_agent_pb2.RejoinRequest(term=2, leader_name="b", leader_data_address=b.address,
                                                         allow_reclone=False), timeout=60)
    assert rj.detail == "rewound"
    wait_for(lambda: has(a, b"after") == b"promotion", what="a follows b")
    for i in range(3):                                   # b's copy of the tail, not a's SKIP
        assert has(a, b"tail-%d" % i) == b"t"
    assert a.status().timeline == 2
    b.put(b"more", b"x", level=store_pb2.COMMIT_LOCAL)
    wait_for(lambda: a.status().flush_lsn == b.status().flush_lsn, what="a caught up")
