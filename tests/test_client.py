"""``walrus_ha.client`` logic without a cluster: the reconnect backoff, and
``StoreWriter``'s rule that a write whose outcome is unknown is read back
before it is sent again (an in-process fake ``Store`` that applies a write
and then fails the call, as a leader dying mid-reply does). The real
failover is ``tests/orchestrator/test_orch_operator_ops.py``."""
from __future__ import annotations

import grpc
import pytest

from walrus_ha.client import Leader, LeaderFollower, NoLeader, StoreWriter, backoff_delay
from walrus_ha.common import grpcutil
from walrus_ha.protos import store_pb2, store_pb2_grpc


@pytest.mark.parametrize("attempt, rand, want", [
    (0, 0.0, 0.025), (0, 0.999999, 0.05), (3, 0.0, 0.2), (6, 0.0, 1.0), (30, 0.0, 1.0), (10_000, 0.5, 1.5),
], ids=["first-low", "first-high", "doubles", "capped", "capped-late", "huge-attempt"])
def test_backoff_delay(attempt, rand, want) -> None:
    assert backoff_delay(attempt, 0.05, 2.0, lambda: rand) == pytest.approx(want, rel=1e-4)


class FlakyStore(store_pb2_grpc.StoreServicer):
    """Applies every Put, but fails the first ``fail`` replies with ``code``."""

    def __init__(self, fail: int, code: grpc.StatusCode, apply: bool = True):
        self.data: dict[bytes, bytes] = {}
        self.applied = 0
        self.fail, self.code, self.apply = fail, code, apply

    def Put(self, request, context):
        if self.apply or self.fail == 0:
            self.data[request.key] = request.value
            self.applied += 1
        if self.fail > 0:
            self.fail -= 1
            context.abort(self.code, "leader went away")
        return store_pb2.WriteReply(lsn=1, timeline=1, term=1)

    def Get(self, request, context):
        value = self.data.get(request.key)
        return store_pb2.GetReply(found=value is not None, value=value or b"", role="primary")


@pytest.fixture
def store():
    stores = []

    def start(servicer: FlakyStore) -> str:
        server = grpcutil.server(max_workers=4)
        store_pb2_grpc.add_StoreServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        stores.append(server)
        return f"127.0.0.1:{port}"
    yield start
    for s in stores:
        s.stop(0)


def writer_for(address: str, deadline_s: float = 10.0) -> StoreWriter:
    follower = LeaderFollower(["unused:1"])
    follower._set(Leader("a", 1, address, writable=True))      # as a WatchLeader message would
    return StoreWriter(follower, deadline_s=deadline_s, sleep=lambda s: None)


def test_an_applied_write_whose_reply_was_lost_is_not_sent_again(store) -> None:
    fake = FlakyStore(fail=1, code=grpc.StatusCode.UNAVAILABLE)
    w = writer_for(store(fake))
    assert w.put(b"k", b"v").name == "a"
    assert fake.applied == 1 and w.read_back_hits == 1 and w.retries == 1


def test_a_write_that_was_not_applied_is_sent_again(store) -> None:
    fake = FlakyStore(fail=2, code=grpc.StatusCode.UNAVAILABLE, apply=False)
    w = writer_for(store(fake))
    w.put(b"k", b"v")
    assert fake.data == {b"k": b"v"} and fake.applied == 1 and w.read_back_hits == 0 and w.retries == 2


def test_a_refused_write_is_not_retried(store) -> None:
    fake = FlakyStore(fail=1, code=grpc.StatusCode.INVALID_ARGUMENT, apply=False)
    w = writer_for(store(fake))
    with pytest.raises(grpc.RpcError):
        w.put(b"k", b"v")
    assert w.retries == 0


def test_no_writable_leader_ends_at_the_deadline() -> None:
    follower = LeaderFollower(["unused:1"])
    follower._set(Leader("a", 1, "127.0.0.1:1", writable=False))
    with pytest.raises(NoLeader):
        StoreWriter(follower, deadline_s=0.2).put(b"k", b"v")
