"""Record codec and KV state: round trips, malformed input, deterministic snapshots."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walrus_ha.common.errors import CorruptWal
from walrus_ha.node.engine.embedded.records import (
    Batch,
    BatchOp,
    CheckpointMark,
    Delete,
    Noop,
    Put,
    TimelineSwitch,
    decode,
    encode,
    encode_put,
)
from walrus_ha.node.engine.embedded.state import KvState

keys = st.binary(min_size=1, max_size=20)
values = st.binary(max_size=100)
records = st.one_of(
    st.builds(Put, keys, values),
    st.builds(Delete, keys),
    st.builds(Batch, st.lists(st.builds(BatchOp, keys, st.none() | values), max_size=8).map(tuple)),
    st.builds(TimelineSwitch, st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1),
              st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.text(max_size=30)),
    st.builds(CheckpointMark, st.integers(0, 2**64 - 1), st.integers(1, 2**32 - 1)),
    st.just(Noop()),
)


@given(records)
def test_any_record_roundtrips(record):
    assert decode(encode(record)) == record


@given(keys, values)
def test_put_fast_path_matches_generic_encoding(key, value):
    assert encode_put(key, value) == encode(Put(key, value))


@pytest.mark.parametrize("payload", [b"", b"\x09", b"\x01\xff\xff\xff\xff", b"\x03\x02\x00\x00\x00",
                                     b"\x05\x00", b"\x06extra", b"\x03\x01\x00\x00\x00\x07"],
                         ids=["empty", "unknown-type", "put-key-too-long", "batch-short",
                              "checkpoint-short", "noop-trailing", "batch-bad-flag"])
def test_malformed_payloads_raise_corrupt_wal(payload):
    with pytest.raises(CorruptWal):
        decode(payload)


@given(st.binary(max_size=64))
def test_decode_raises_only_corrupt_wal(payload):
    try:
        decode(payload)
    except CorruptWal:
        pass


@given(st.lists(records, max_size=30))
def test_state_replay_is_deterministic_and_snapshots_roundtrip(recs):
    a, b = KvState(), KvState()
    for i, r in enumerate(recs, 1):
        a.apply(r, i * 10)
        b.apply(r, i * 10)
        b.apply(r, i * 10)          # replaying the same record again is a no-op
    assert a.snapshot() == b.snapshot()
    c = KvState.from_snapshot(a.snapshot())
    assert c.items() == a.items() and c.applied_lsn == a.applied_lsn and c.timeline == a.timeline


def test_state_applies_batches_and_deletes():
    s = KvState()
    s.apply(Put(b"a", b"1"), 10)
    s.apply(Batch((BatchOp(b"b", b"2"), BatchOp(b"a", None))), 20)
    s.apply(Delete(b"zz"), 30)
    assert s.items() == [(b"b", b"2")] and s.applied_lsn == 30
    s.apply(TimelineSwitch(2, 1, 30, 7, "promote"), 40)
    assert (s.timeline, s.term) == (2, 7)


def test_truncated_snapshot_is_corrupt():
    s = KvState({b"k": b"v"}, 5)
    with pytest.raises(CorruptWal):
        KvState.from_snapshot(s.snapshot()[:-1])
