"""Records: JSON round trip, tolerant parsing, and the view builder (pure)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walrus_ha.common.keyspace import Keyspace
from walrus_ha.common.records import (
    ClusterView,
    HistoryRecord,
    LeaderRecord,
    MalformedRecord,
    MemberRecord,
    SyncRecord,
    build_view,
)

names = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12)
lsns = st.integers(min_value=0, max_value=2**63)


@given(name=names, role=st.sampled_from(["primary", "standby", "stopped", "unknown"]),
       flush=lsns, write=lsns, term=st.integers(0, 10**6), streaming=st.booleans(),
       tags=st.dictionaries(st.sampled_from(["priority", "nofailover"]), st.integers(-5, 5)))
def test_member_round_trip(name, role, flush, write, term, streaming, tags):
    rec = MemberRecord(name, role=role, flush_lsn=flush, write_lsn=write, term=term,
                       streaming=streaming, tags=tags, updated_at=1.5)
    assert MemberRecord.from_json(rec.to_json()) == rec
    assert MemberRecord.from_json(rec.to_json().encode()) == rec


@pytest.mark.parametrize("rec", [
    LeaderRecord("a", term=3, timeline=2, agent_address="127.0.0.1:1", data_address="127.0.0.1:2", since=5.0),
    SyncRecord("any", 1, ("b", "c"), "a", 4),
    HistoryRecord(7, "switchover", "a", "b", 100, 90, 10, 1.0, 2.0, ({"name": "b", "flush_lsn": 90},),
                  "operator", "orch-1", 3),
], ids=["leader", "sync", "history"])
def test_round_trip(rec):
    assert type(rec).from_json(rec.to_json()) == rec


def test_unknown_keys_ignored_and_missing_keys_default():
    rec = MemberRecord.from_json(json.dumps({"name": "a", "from_the_future": 1, "flush_lsn": 7}))
    assert rec == MemberRecord("a", flush_lsn=7)


def test_float_field_accepts_integer_json():
    assert LeaderRecord.from_json('{"name": "a", "since": 3}').since == 3.0


@pytest.mark.parametrize("text", [
    b"", b"not json", b"\xff\xfe", b"[]", b"42", b'{"term": 1}',            # not an object / no name
    b'{"name": 5}', b'{"name": "a", "flush_lsn": "0/16B3748"}', b'{"name": "a", "term": true}',
    b'{"name": "a", "streaming": "yes"}', b'{"name": "a", "tags": []}',
], ids=["empty", "garbage", "bad-utf8", "list", "number", "no-name", "name-int", "lsn-str",
        "term-bool", "bool-str", "tags-list"])
def test_malformed_member_raises_malformed_record_only(text):
    with pytest.raises(MalformedRecord):
        MemberRecord.from_json(text)


def test_history_candidates_must_be_objects():
    with pytest.raises(MalformedRecord):
        HistoryRecord.from_json('{"term": 1, "candidates": "a,b"}')
    assert SyncRecord.from_json('{"names": ["a", "b"]}').names == ("a", "b")


KS = Keyspace("c1")


def kv(key: str, value, lease: int = 0, mod: int = 1):
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return (key.encode(), raw, lease, mod)


def test_build_view_reads_every_key():
    items = [
        kv(KS.leader, LeaderRecord("a", term=2).to_dict(), lease=77, mod=9),
        kv(KS.term, 2), kv(KS.member("a"), MemberRecord("a", role="primary").to_dict()),
        kv(KS.member("b"), MemberRecord("b").to_dict()),
        kv(KS.sync, SyncRecord("first", 1, ("b",), "a", 2).to_dict(), mod=11),
        kv(KS.config, {"ttl": 10}, mod=3), kv(KS.pause, True), kv(KS.switchover, {"leader": "a"}),
        kv(KS.failover_state, {"term": 3}), kv(KS.orchestrator, "o1"), kv(KS.initialize, "a"),
        kv(KS.history(1), {"term": 1}), kv("/walrus/other/leader", {"name": "z"}),
    ]
    view = build_view(KS, 20, items)
    assert view.revision == 20
    assert view.leader == LeaderRecord("a", term=2) and view.leader_lease == 77 and view.leader_mod_revision == 9
    assert view.term == 2
    assert [m.name for m in view.members] == ["a", "b"]
    assert view.member("a").role == "primary" and view.member("zz") is None
    assert view.sync.names == ("b",) and view.sync_mod_revision == 11
    assert view.config == {"ttl": 10} and view.config_mod_revision == 3
    assert view.paused is True
    assert view.switchover == {"leader": "a"} and view.failover == {"term": 3}
    assert view.orchestrator == "o1" and view.initialize == "a"
    assert view.skipped == ()


def test_build_view_skips_malformed_values_without_raising():
    items = [kv(KS.member("a"), b"{garbage"), kv(KS.member("b"), MemberRecord("b").to_dict()),
             kv(KS.member("c"), MemberRecord("not-c").to_dict()),
             kv(KS.leader, {"term": 1}), kv(KS.term, "x"), kv(KS.pause, "yes"), kv(KS.config, [1])]
    view = build_view(KS, 5, items)
    assert [m.name for m in view.members] == ["b"]
    assert view.leader is None and view.term == 0 and view.paused is False and view.config is None
    assert set(view.skipped) == {KS.member("a"), KS.member("c"), KS.leader, KS.term, KS.pause, KS.config}


def test_empty_view():
    assert build_view(KS, 1, []) == ClusterView(revision=1)
