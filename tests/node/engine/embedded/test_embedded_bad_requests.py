"""Bad requests against a real ``walrus engine`` process (issue 10, item 14):
undecodable bytes, slot names that are paths, feedback past what was sent.

Every one is answered with a status code and a sentence, creates nothing and
leaves no traceback in the engine's log."""
from __future__ import annotations

import json
import os
import queue

import grpc
import pytest

from walrus_ha.protos import store_pb2, walstream_pb2, walstream_pb2_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
JUNK = b"\xff\xff\xff\xff\x0f"      # a field tag with a truncated varint: not a protobuf message


def _raw(channel: grpc.Channel, method: str, kind: str):
    ident = lambda b: b   # noqa: E731  (bytes in, bytes out: send the junk as is)
    return getattr(channel, kind)(method, request_serializer=ident, response_deserializer=ident)


def _log_has_traceback(proc) -> bool:
    text = open(proc.log_path, errors="replace").read()
    return "Traceback" in text


@pytest.mark.parametrize("method,kind", [
    ("/walrus.v1.Store/Put", "unary_unary"),
    ("/walrus.v1.Store/Get", "unary_unary"),
    ("/walrus.v1.Store/WriteStream", "stream_stream"),
    ("/walrus.v1.WalStream/Stream", "stream_stream"),
    ("/walrus.v1.WalStream/BaseBackup", "unary_stream"),
    ("/walrus.v1.WalStream/TimelineHistory", "unary_unary"),
    ("/walrus.v1.NodeAgent/GetStatus", "unary_unary"),
    ("/walrus.v1.NodeAgent/Follow", "unary_unary"),
])
def test_undecodable_request_is_invalid_argument(cluster, method, kind):
    p = cluster.engine("p")
    call = _raw(p.channel(), method, kind)
    with pytest.raises(grpc.RpcError) as err:
        if kind == "unary_unary":
            call(JUNK, timeout=10)
        elif kind == "unary_stream":
            list(call(JUNK, timeout=10))
        else:
            list(call(iter([JUNK]), timeout=10))
    assert err.value.code() == INVALID, err.value
    assert "could not be decoded" in err.value.details()
    assert p.status().role == 1 and p.put(b"k", b"v").lsn > 0     # still serving
    assert not _log_has_traceback(p)


@pytest.mark.parametrize("name", ["../../etc/x", "a/b", "x" * 100_000, "two words", "at@sign", ".."])
def test_slot_names_that_are_not_member_names_are_refused(cluster, name):
    p = cluster.engine("p")
    ws = walstream_pb2_grpc.WalStreamStub(p.channel())
    with pytest.raises(grpc.RpcError) as err:
        list(ws.BaseBackup(walstream_pb2.BaseBackupRequest(standby_name=name), timeout=10))
    assert err.value.code() == INVALID and "standby_name" in err.value.details()
    start = walstream_pb2.StandbyMessage(start=walstream_pb2.StartReplication(
        standby_name=name, start_lsn=p.status().flush_lsn, timeline=1, term=0))
    with pytest.raises(grpc.RpcError) as err:
        list(ws.Stream(iter([start]), timeout=10))
    assert err.value.code() == INVALID and "standby_name" in err.value.details()
    assert len(err.value.details()) < 300
    assert [s.name for s in p.status().slots] == []                # nothing created
    assert not os.path.exists(os.path.join(p.data_dir, "slots.json")) or \
        json.load(open(os.path.join(p.data_dir, "slots.json")))["slots"] == []


def test_feedback_past_the_sent_wal_is_refused_and_releases_no_commit(cluster):
    """A fake synchronous standby claiming flush LSN 2^64-1 must not get a
    synchronous commit acknowledged, nor move its slot."""
    p = cluster.engine("p", "--sync", "FIRST 1 (fake)", "--synchronous-commit", "on")
    ws = walstream_pb2_grpc.WalStreamStub(p.channel())
    start_lsn = p.status().flush_lsn
    outbox: queue.Queue = queue.Queue()
    outbox.put(walstream_pb2.StandbyMessage(start=walstream_pb2.StartReplication(
        standby_name="fake", start_lsn=start_lsn, timeline=1, term=0)))

    def requests():
        while True:
            msg = outbox.get()
            if msg is None:
                return
            yield msg
    stream = ws.Stream(requests(), timeout=60)
    try:
        next(stream)                      # the first keepalive: the sender is registered
        big = 2 ** 64 - 1
        outbox.put(walstream_pb2.StandbyMessage(feedback=walstream_pb2.Feedback(
            write_lsn=big, flush_lsn=big, apply_lsn=big)))
        with pytest.raises(grpc.RpcError) as err:
            for _ in stream:
                pass
        assert err.value.code() == INVALID and "past the WAL sent" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            p.put(b"k", b"v", level=store_pb2.COMMIT_ON, timeout=3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED   # never acknowledged
        slots = {s.name: s for s in p.status().slots}
        assert slots["fake"].restart_lsn == start_lsn
    finally:
        outbox.put(None)
        stream.cancel()
