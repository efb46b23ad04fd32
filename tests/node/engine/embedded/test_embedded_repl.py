"""Replication between real ``walrus engine`` processes on loopback."""
import signal
import threading

import pytest

from embedded_engine_procs import wait_for
from walrus_ha.protos import node_agent_pb2, store_pb2

pytestmark = pytest.mark.integration
ON = store_pb2.COMMIT_ON


def standby_has(proc, key, value):
    r = proc.get(key)
    return r.found and r.value == value


def test_writes_replicate_synchronously(cluster):
    a = cluster.engine("a", "--sync", "FIRST 1 (b)", "--synchronous-commit", "on")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    wait_for(lambda: a.status().standbys, what="standby b connected")
    replies = [a.put(b"k%d" % i, b"v%d" % i) for i in range(50)]
    st = a.status()
    # 'on' acknowledged => b flushed it already
    assert st.standbys[0].flush_lsn >= replies[-1].lsn
    assert st.standbys[0].sync_state == "sync"
    assert st.sync_standbys == "FIRST 1 (b)"
    assert [s.name for s in st.slots] == ["b"]
    wait_for(lambda: standby_has(b, b"k49", b"v49"), what="b replayed k49")
    got = b.get(b"k10")
    assert got.role == "standby" and got.value == b"v10"
    bst = b.status()
    assert bst.streaming and bst.upstream == a.upstream_arg and bst.flush_lsn >= replies[-1].lsn
    # remote_apply: visible on the standby as soon as it is acknowledged
    a.put(b"applied", b"yes", level=store_pb2.COMMIT_REMOTE_APPLY)
    assert standby_has(b, b"applied", b"yes")


def test_stopped_and_killed_standby_catches_up(cluster):
    a = cluster.engine("a")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    a.put(b"first", b"1")
    wait_for(lambda: standby_has(b, b"first", b"1"), what="b has first")
    b.signal(signal.SIGSTOP)
    for i in range(100):
        a.put(b"while-stopped-%d" % i, b"x" * 100)
    b.signal(signal.SIGCONT)
    wait_for(lambda: standby_has(b, b"while-stopped-99", b"x" * 100), what="b caught up after SIGSTOP")
    b.kill()
    for i in range(100):
        a.put(b"while-dead-%d" % i, b"y" * 100)
    b.start()
    wait_for(lambda: standby_has(b, b"while-dead-99", b"y" * 100), what="b caught up after SIGKILL")
    end = a.status().flush_lsn
    wait_for(lambda: b.status().replay_lsn >= end, what="b replayed to the primary's end")


def test_slot_holds_wal_then_is_lost_past_cap(cluster):
    seg = 64 * 1024
    a = cluster.engine("a", "--segment-size", str(seg), "--max-slot-wal-keep-size", str(4 * seg),
                       "--checkpoint-interval", "0.2")
    b = cluster.engine("b", "--upstream", a.upstream_arg, "--segment-size", str(seg))
    a.put(b"k", b"v")
    wait_for(lambda: standby_has(b, b"k", b"v"), what="b streaming")
    b.kill()
    value = b"z" * 4000
    for i in range(40):                      # ~160 KB: under the 256 KiB cap
        a.put(b"held-%d" % i, value)
    wait_for(lambda: a.status().slots[0].retained_bytes > 2 * seg, what="slot retains WAL")
    slot = a.status().slots[0]
    assert not slot.lost and not slot.active
    b.start()
    wait_for(lambda: standby_has(b, b"held-39", value), what="b got the held WAL")
    b.kill()
    for i in range(120):                     # ~480 KB: past the cap
        a.put(b"lost-%d" % i, value)
    wait_for(lambda: a.status().slots[0].lost, what="slot marked lost")
    b.start()
    st = wait_for(lambda: (lambda s: s if s.needs_reclone else None)(b.status()), what="b needs reclone")
    assert not st.streaming
    assert "re-clone" in st.detail or "reclone" in st.detail.lower()
    rj = b.control().Rejoin(node_agent_pb2.RejoinRequest(term=0, leader_name="a", leader_data_address=a.address,
                                                         allow_reclone=True), timeout=60)
    assert rj.detail == "recloned"
    wait_for(lambda: standby_has(b, b"lost-119", value), what="b streams again after re-clone")
    st = wait_for(lambda: (lambda s: s if s.streaming else None)(b.status()), what="b streaming")
    assert not st.needs_reclone
    wait_for(lambda: not a.status().slots[0].lost, what="slot recreated by the base backup")


def test_on_commits_survive_primary_sigkill(cluster):
    a = cluster.engine("a", "--sync", "FIRST 1 (b)", "--synchronous-commit", "on")
    b = cluster.engine("b", "--upstream", a.upstream_arg)
    wait_for(lambda: a.status().standbys, what="b connected")
    for rnd in range(10):     # kill points after 5..14 acknowledged writes
        acked: list[bytes] = []
        stop = threading.Event()

        def writer(n=rnd):
            i = 0
            while not stop.is_set():
                key = b"r%d-%d" % (n, i)
                try:
                    a.put(key, b"v", level=ON, timeout=5)
                except Exception:
                    return
                acked.append(key)
                i += 1
                if i >= 5 + n:      # kill right after the acknowledgement of a write
                    a.kill()
                    return
        t = threading.Thread(target=writer)
        t.start()
        t.join(30)
        stop.set()
        assert acked, f"round {rnd}: nothing acknowledged"
        for key in acked:
            wait_for(lambda k=key: standby_has(b, k, b"v"), timeout=15, what=f"acked {key!r} on standby")
        a.start()
        wait_for(lambda: a.status().standbys, what="b reconnected")
