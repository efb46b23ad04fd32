"""Promote, follow, divergence + rewind and terms, with real engine processes."""
import os

import grpc
import pytest

from embedded_engine_procs import has, wait_for
from walrus_ha.protos import common_pb2, node_agent_pb2, store_pb2

pytestmark = pytest.mark.integration
LOCAL = store_pb2.COMMIT_LOCAL


def promote(proc, term):
    return proc.control().Promote(node_agent_pb2.PromoteRequest(term=term), timeout=30)


def test_promote_follow_and_rewind_divergent_old_primary(cluster):
    a = cluster.engine("a", "--checkpoint-interval", "3600")
    b = cluster.engine("b", "--upstream", a.upstream_arg, "--checkpoint-interval", "3600")
    c = cluster.engine("c", "--upstream", a.upstream_arg, "--checkpoint-interval", "3600")
    for i in range(20):
        a.put(b"k%d" % i, b"v%d" % i)
    end = a.status().flush_lsn
    wait_for(lambda: b.status().flush_lsn >= end and c.status().flush_lsn >= end, what="standbys caught up")
    b.stop()
    c.stop()
    for i in range(5):                       # never replicated: the divergent tail
        a.put(b"lost-%d" % i, b"x", level=LOCAL)
    a.kill()

    b.start()                                # standby of the dead a
    reply = promote(b, 5)
    assert reply.status.engine.role == common_pb2.ROLE_PRIMARY
    assert reply.status.engine.timeline == 2 and reply.status.engine.term == 5
    b.put(b"after", b"promotion")

    c.start()
    c.control().Follow(node_agent_pb2.FollowRequest(term=5, leader_name="b",
                                                    leader_data_address=b.address), timeout=30)
    wait_for(lambda: has(c, b"after") == b"promotion", what="c follows b")
    assert c.status().timeline == 2

    a.start()                                # old primary comes back with its extra writes
    assert has(a, b"lost-4") == b"x"
    rj = a.control().Rejoin(node_agent_pb2.RejoinRequest(term=5, leader_name="b", leader_data_address=b.address,
                                                         allow_reclone=False), timeout=60)
    assert rj.detail == "rewound"
    wait_for(lambda: has(a, b"after") == b"promotion", what="a streams from b after rewind")
    st = a.status()
    assert st.role == common_pb2.ROLE_STANDBY and st.timeline == 2 and st.term == 5
    assert has(a, b"lost-0") is None and has(a, b"k19") == b"v19"
    # a writes are refused now, and b sees both standbys
    with pytest.raises(grpc.RpcError) as err:
        a.put(b"nope", b"1")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    wait_for(lambda: {s.name for s in b.status().standbys} == {"a", "c"}, what="b streams to a and c")


def test_rejoin_reclones_when_rewind_is_impossible(cluster):
    a = cluster.engine("a", "--checkpoint-interval", "0.2")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    a.put(b"k", b"v")
    wait_for(lambda: has(b, b"k") == b"v", what="b streaming")
    fork = b.status().flush_lsn
    b.stop()
    ckpt_dir = os.path.join(a.data_dir, "checkpoints")

    def only_checkpoints_past_fork():
        a.put(b"lost-%d" % len(os.listdir(ckpt_dir)), b"x")
        redo = [int(n[5:], 16) for n in os.listdir(ckpt_dir) if n.startswith("ckpt-") and len(n) == 21]
        return redo and min(redo) > fork
    wait_for(only_checkpoints_past_fork, interval=0.1, what="a checkpointed past the fork point")
    a.kill()
    b.start()
    promote(b, 2)
    b.put(b"new", b"1")
    a.start("--checkpoint-interval", "3600")
    with pytest.raises(grpc.RpcError) as err:
        a.control().Rejoin(node_agent_pb2.RejoinRequest(term=2, leader_name="b", leader_data_address=b.address,
                                                        allow_reclone=False), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    rj = a.control().Rejoin(node_agent_pb2.RejoinRequest(term=2, leader_name="b", leader_data_address=b.address,
                                                         allow_reclone=True), timeout=60)
    assert rj.detail == "recloned"
    wait_for(lambda: has(a, b"new") == b"1", what="a streams after re-clone")
    assert has(a, b"lost-0") is None


def test_stale_terms_are_refused(cluster):
    a = cluster.engine("a")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    a.put(b"k", b"v")
    wait_for(lambda: has(b, b"k") == b"v", what="b streaming")
    promote(a, 3)                            # already primary: records term 3
    a.put(b"k2", b"v")                       # the stream carries term 3 to b
    wait_for(lambda: b.status().term == 3, what="b learned term 3 from the stream")
    with pytest.raises(grpc.RpcError) as err:
        promote(b, 2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "stale term" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        b.control().Follow(node_agent_pb2.FollowRequest(term=1, leader_name="a", leader_data_address=a.address),
                           timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # b learns of term 9; a (term 3) is now a stale primary whose WAL b refuses
    b.control().Follow(node_agent_pb2.FollowRequest(term=9, leader_name="a", leader_data_address=a.address),
                       timeout=10)
    a.put(b"from-stale", b"1")
    st = wait_for(lambda: (lambda s: s if (not s.streaming and "stale term" in s.detail) else None)(b.status()),
                  what="b refuses the stale primary")
    assert st.term == 9
    assert has(b, b"from-stale") is None


def test_demote_ships_the_wal_tail_written_just_before_it(cluster):
    """Writes in flight at Demote (``off`` level: not flushed yet) still reach
    the standby: demote refuses new writes, flushes, and lets the senders ship
    everything up to the final flush LSN it reports."""
    import threading

    a = cluster.engine("a", "--checkpoint-interval", "3600")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    a.put(b"first", b"1")
    wait_for(lambda: has(b, b"first") == b"1", what="b streaming")
    stop = threading.Event()
    acked: list[bytes] = []

    def writer(n):
        i = 0
        while not stop.is_set():
            key = b"w%d-%d" % (n, i)
            try:
                a.put(key, b"x" * 200, level=store_pb2.COMMIT_OFF, timeout=5)
            except grpc.RpcError:
                return
            acked.append(key)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 200, what="writes under way")
    reply = a.control().Demote(node_agent_pb2.DemoteRequest(term=1), timeout=30)
    stop.set()
    for t in threads:
        t.join(10)
    final = reply.status.engine.flush_lsn
    assert reply.detail.startswith("demoted; final flush LSN ")
    assert reply.status.engine.role == common_pb2.ROLE_STANDBY
    assert final == a.status().flush_lsn == a.status().write_lsn
    wait_for(lambda: b.status().replay_lsn >= final, what="b replayed the tail")
    missing = [k for k in acked if has(b, k) is None]
    assert not missing, f"{len(missing)} writes acknowledged before the demote missing on b"
