"""The Store gRPC contract: argument errors, role errors, fencing."""
import threading
import time

import grpc
import pytest

from embedded_engine_procs import Cluster, wait_for
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import SyncSpec
from walrus_ha.node.engine.embedded import EmbeddedEngine
from walrus_ha.protos import store_pb2, store_pb2_grpc

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def engine(tmp_path):
    """An in-process primary (real files, real gRPC server on a free port)."""
    e = EmbeddedEngine("p", str(tmp_path / "p"), "127.0.0.1:0",
                       EmbeddedConfig(synchronous_standby_names="FIRST 1 (absent)"))
    e.bootstrap()
    e.start()
    ch = grpc.insecure_channel(e.data_address)
    yield e, store_pb2_grpc.StoreStub(ch)
    ch.close()
    e.stop()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as err:
        fn()
    return err.value.code(), err.value.details()


@pytest.mark.parametrize("make,needle", [
    (lambda s: s.Put(store_pb2.PutRequest(key=b"", value=b"v", level=2)), "key must not be empty"),
    (lambda s: s.Put(store_pb2.PutRequest(key=b"k" * 1025, value=b"v", level=2)), "limit is 1024"),
    (lambda s: s.Put(store_pb2.PutRequest(key=b"k", value=b"v" * (1024 * 1024 + 1), level=2)), "max_value_bytes"),
    (lambda s: s.Put(store_pb2.PutRequest(key=b"k", value=b"v", level=99)), "unknown commit level"),
    (lambda s: s.Delete(store_pb2.DeleteRequest(key=b"")), "key must not be empty"),
    (lambda s: s.Batch(store_pb2.BatchRequest(level=2)), "at least one op"),
    (lambda s: s.Batch(store_pb2.BatchRequest(ops=[store_pb2.WriteOp(key=b"a", value=b"1"),
                                                   store_pb2.WriteOp(key=b"")], level=2)), "op 1"),
    (lambda s: s.Get(store_pb2.GetRequest(key=b"")), "key must not be empty"),
], ids=["empty-key", "long-key", "big-value", "bad-level", "delete-empty", "empty-batch", "batch-op", "get-empty"])
def test_bad_arguments(engine, make, needle):
    _, stub = engine
    code, details = code_of(lambda: make(stub))
    assert code == INVALID and needle in details


def test_local_writes_batch_and_delete(engine):
    e, stub = engine
    r = stub.Put(store_pb2.PutRequest(key=b"a", value=b"1", level=store_pb2.COMMIT_LOCAL))
    assert r.lsn > 0 and r.timeline == 1
    stub.Batch(store_pb2.BatchRequest(ops=[store_pb2.WriteOp(key=b"b", value=b"2"),
                                           store_pb2.WriteOp(key=b"a", delete=True)],
                                      level=store_pb2.COMMIT_LOCAL))
    assert not stub.Get(store_pb2.GetRequest(key=b"a")).found
    assert stub.Get(store_pb2.GetRequest(key=b"b")).value == b"2"
    stub.Delete(store_pb2.DeleteRequest(key=b"b", level=store_pb2.COMMIT_OFF))
    assert not stub.Get(store_pb2.GetRequest(key=b"b")).found
    assert e.status().flush_lsn <= e.status().write_lsn


def put_req(i, key, value=b"v", level=store_pb2.COMMIT_LOCAL):
    return store_pb2.WriteRequest(id=i, put=store_pb2.PutRequest(key=key, value=value, level=level))


def test_write_stream_acks_each_write_in_order(engine):
    _, stub = engine
    reqs = [put_req(1, b"a", b"1"), put_req(2, b"b", b"2"),
            store_pb2.WriteRequest(id=3, delete=store_pb2.DeleteRequest(key=b"a", level=store_pb2.COMMIT_LOCAL)),
            store_pb2.WriteRequest(id=4, batch=store_pb2.BatchRequest(
                ops=[store_pb2.WriteOp(key=b"c", value=b"3"), store_pb2.WriteOp(key=b"b", delete=True)],
                level=store_pb2.COMMIT_LOCAL))]
    replies = list(stub.WriteStream(iter(reqs), timeout=10))
    assert [r.id for r in replies] == [1, 2, 3, 4]
    lsns = [r.reply.lsn for r in replies]
    assert lsns == sorted(lsns) and len(set(lsns)) == 4 and all(r.reply.timeline == 1 for r in replies)
    found = {k: stub.Get(store_pb2.GetRequest(key=k)).found for k in (b"a", b"b", b"c")}
    assert found == {b"a": False, b"b": False, b"c": True}


@pytest.mark.parametrize("bad,needle", [
    (store_pb2.WriteRequest(id=2), "one of put, delete or batch"),
    (put_req(2, b""), "key must not be empty"),
    (put_req(2, b"k", level=99), "unknown commit level"),
    (store_pb2.WriteRequest(id=2, batch=store_pb2.BatchRequest(level=2)), "at least one op"),
], ids=["empty", "empty-key", "bad-level", "empty-batch"])
def test_write_stream_bad_message_ends_stream_with_invalid_argument(engine, bad, needle):
    _, stub = engine
    stream = stub.WriteStream(iter([put_req(1, b"ok"), bad, put_req(3, b"never")]), timeout=10)
    assert next(stream).id == 1
    code, details = code_of(lambda: next(stream))
    assert code == INVALID and needle in details and "write 2" in details
    assert not stub.Get(store_pb2.GetRequest(key=b"never")).found


def test_fence_refuses_and_fails_pending_sync_commit(engine):
    e, stub = engine
    result = {}

    def waiting_put():     # FIRST 1 (absent): waits for a standby that never comes
        try:
            stub.Put(store_pb2.PutRequest(key=b"w", value=b"1", level=store_pb2.COMMIT_ON), timeout=30)
            result["acked"] = True
        except grpc.RpcError as exc:
            result["code"] = exc.code()
            result["details"] = exc.details()
    t = threading.Thread(target=waiting_put)
    t.start()
    wait_for(lambda: e.status().write_lsn > 0, what="the write reached the WAL")
    e.fence("lost leader key")
    t.join(30)
    assert "acked" not in result
    assert result["code"] == grpc.StatusCode.UNAVAILABLE and "lost leader key" in result["details"]
    code, details = code_of(lambda: stub.Put(store_pb2.PutRequest(key=b"x", value=b"1", level=2)))
    assert code == grpc.StatusCode.UNAVAILABLE and "lost leader key" in details
    st = e.status()
    assert st.fenced and st.fence_reason == "lost leader key"
    e.unfence()
    stub.Put(store_pb2.PutRequest(key=b"x", value=b"1", level=store_pb2.COMMIT_LOCAL))


def test_lease_deadline_stops_acknowledgements(engine):
    e, stub = engine
    e.set_lease_deadline(time.monotonic() + 0.3)
    code, details = code_of(lambda: stub.Put(store_pb2.PutRequest(key=b"w", value=b"1", level=store_pb2.COMMIT_ON),
                                             timeout=30))
    assert code == grpc.StatusCode.UNAVAILABLE and "lease" in details
    code, _ = code_of(lambda: stub.Put(store_pb2.PutRequest(key=b"y", value=b"1", level=store_pb2.COMMIT_LOCAL)))
    assert code == grpc.StatusCode.UNAVAILABLE
    e.set_lease_deadline(None)
    e.set_sync_standbys(SyncSpec())
    stub.Put(store_pb2.PutRequest(key=b"y", value=b"1", level=store_pb2.COMMIT_ON))


@pytest.mark.integration
def test_standby_refuses_writes_naming_its_primary(tmp_path):
    c = Cluster(tmp_path)
    try:
        a = c.engine("a")
        b = c.engine("b", "--upstream", a.upstream_arg)
        a.put(b"k", b"v")
        wait_for(lambda: b.get(b"k").found, what="b replayed k")
        code, details = code_of(lambda: b.put(b"k", b"w"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "standby" in details and a.upstream_arg in details
        r = b.get(b"k")
        assert r.role == "standby" and r.lag_bytes == 0
        stream = b.store().WriteStream(iter([store_pb2.WriteRequest(id=1, put=store_pb2.PutRequest(
            key=b"k", value=b"w"))]), timeout=10)
        code, details = code_of(lambda: list(stream))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and a.upstream_arg in details
    finally:
        c.close()
