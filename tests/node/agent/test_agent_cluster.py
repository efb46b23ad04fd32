"""Real agents (``walrus node`` subprocesses with the embedded engine) against a
real etcd: bootstrap, hand-driven failover, self-fencing and rejoin.

The orchestrator is not involved: Promote / Follow are sent by hand.
"""
from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest

from agent_procs import ROLE_PRIMARY, ROLE_STANDBY, TIMING, wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import SyncRecord
from walrus_ha.protos import node_agent_pb2, store_pb2

pytestmark = pytest.mark.integration


def promote(agent, term):
    return agent.agent.Promote(node_agent_pb2.PromoteRequest(term=term, reason="test"), timeout=15)


def follow(agent, leader, term):
    return agent.agent.Follow(node_agent_pb2.FollowRequest(
        term=term, leader_name=leader.name, leader_data_address=leader.data_address), timeout=30)


def leader_gone(etcd, cluster):
    with Dcs([etcd.endpoint], cluster) as dcs:
        return dcs.read_view().leader is None


def test_bootstrap_one_primary_two_standbys(agents, etcd):
    for n in ("a", "b", "c"):
        agents.add(n)
    primary = agents.wait_primary()
    others = [a for a in agents.all.values() if a is not primary]
    for o in others:
        agents.wait_standby_of(o.name, primary.name)
    st = primary.status()
    assert st.leader_term == 1 and st.engine.term >= 1 and st.state == "primary"
    reply = primary.put(b"k1", b"v1")
    assert reply.term == 1
    for o in others:
        wait_for(lambda: o.get(b"k1").value == b"v1", what=f"k1 replicated to {o.name}")
        with pytest.raises(grpc.RpcError) as err:
            o.put(b"k2", b"v2")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The primary applies the sync record the orchestrator publishes for it.
    with Dcs([etcd.endpoint], agents.cluster) as dcs:
        assert dcs.set_sync(SyncRecord("first", 1, (others[0].name,), primary.name, 1), 0)
        wait_for(lambda: primary.status().engine.sync_standbys == f"FIRST 1 ({others[0].name})",
                 what="sync standby set applied")
        assert primary.put(b"k3", b"v3", level=store_pb2.COMMIT_ON).term == 1
        members = {m.name: m for m in dcs.read_view().members}
    assert set(members) == {"a", "b", "c"}
    assert members[primary.name].role == "primary" and not members[primary.name].fenced
    assert all(members[o.name].upstream == f"{primary.name}@{primary.data_address}" for o in others)


def test_sigterm_releases_leader_and_member_keys_before_exit(agents, etcd):
    for n in ("a", "b"):
        agents.add(n)
    primary = agents.wait_primary()
    other = agents["b" if primary.name == "a" else "a"]
    agents.wait_standby_of(other.name, primary.name)
    primary.stop()
    assert primary.proc.returncode == 0
    with Dcs([etcd.endpoint], agents.cluster) as dcs:
        view = dcs.read_view()
    # No waiting for a ttl: the agent released the leader key and revoked its lease on the way out.
    assert view.leader is None and view.term == 1
    assert [m.name for m in view.members] == [other.name]


def test_promote_after_primary_killed_and_lease_expired(agents, etcd):
    for n in ("a", "b", "c"):
        agents.add(n)
    old = agents.wait_primary()
    b, c = [a for a in agents.all.values() if a is not old]
    for s in (b, c):
        agents.wait_standby_of(s.name, old.name)
    old.put(b"before", b"1", level=store_pb2.COMMIT_ON)
    # No orchestrator publishes a sync set here, so COMMIT_ON waits for no
    # standby (like PostgreSQL with empty synchronous_standby_names): wait
    # until both standbys have the write before killing its primary.
    for s in (b, c):
        wait_for(lambda s=s: s.get(b"before").value == b"1", what=f"{s.name} replayed the write")
    old.kill()
    # Stale term first: the leader term is 1, so Promote(1) is refused.
    with pytest.raises(grpc.RpcError) as err:
        promote(b, 1)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "stale term 1" in err.value.details()
    wait_for(lambda: leader_gone(etcd, agents.cluster), timeout=TIMING["ttl"] + 20, what="leader lease expiry")
    reply = promote(b, 2)
    assert reply.changed and reply.status.holds_leader and reply.status.engine.role == ROLE_PRIMARY
    again = promote(b, 2)                       # idempotent
    assert not again.changed
    # c repoints by itself (watch on the leader key); the orchestrator's Follow is then a no-op.
    agents.wait_standby_of(c.name, b.name)
    assert not follow(c, b, 2).changed
    assert b.get(b"before").value == b"1"
    assert b.put(b"after", b"2").term == 2
    wait_for(lambda: c.get(b"after").value == b"2", what="write on the new primary replicated")


def _writer(agent, stop, results):
    """Write continuously; record (sent_at, acked, error code) per write."""
    i = 0
    while not stop.is_set():
        i += 1
        sent = time.monotonic()
        try:
            agent.put(f"w{i}".encode(), b"x", timeout=30)
            results.append((sent, True, None))
        except grpc.RpcError as exc:
            results.append((sent, False, exc.code()))
            time.sleep(0.05)


def test_sigstopped_primary_fences_itself_and_rejoins(agents, etcd):
    for n in ("a", "b"):
        agents.add(n)
    a = agents.wait_primary()
    b = agents["b" if a.name == "a" else "a"]
    agents.wait_standby_of(b.name, a.name)
    stop, results = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(a, stop, results), daemon=True)
    writer.start()
    wait_for(lambda: len([r for r in results if r[1]]) >= 5, what="writes acknowledged before the pause")
    a.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: leader_gone(etcd, agents.cluster), timeout=TIMING["ttl"] + 20, what="lease expiry")
        assert promote(b, 2).changed
        assert b.put(b"new-leader", b"b").term == 2
        # Writes sent to the paused primary now (they wait in its socket).
        late = []
        late_writer = threading.Thread(target=lambda: _writer_once(a, late), daemon=True)
        late_writer.start()
        time.sleep(0.2)
    finally:
        a.signal(signal.SIGCONT)
    late_writer.join(30)
    stop.set()
    writer.join(30)
    assert late and not late[0][1], f"a write sent to the paused old primary was acknowledged: {late}"
    acked_after_pause = [r for r in results if r[1] and r[0] > stopped_at]
    assert not acked_after_pause, "the old primary acknowledged writes sent after it was paused"
    agents.wait_standby_of(a.name, b.name)
    st = a.status()
    assert not st.holds_leader and st.engine.role == ROLE_STANDBY
    wait_for(lambda: a.get(b"new-leader").value == b"b", what="old primary replays the new leader's WAL")
    with pytest.raises(grpc.RpcError) as err:
        a.put(b"refused", b"x")
    assert err.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE)


def _writer_once(agent, out):
    sent = time.monotonic()
    try:
        agent.put(b"late", b"x", timeout=30)
        out.append((sent, True, None))
    except grpc.RpcError as exc:
        out.append((sent, False, exc.code()))


def test_restarted_old_primary_rejoins_and_never_accepts_writes(agents, etcd):
    for n in ("a", "b"):
        agents.add(n)
    a = agents.wait_primary()
    b = agents["b" if a.name == "a" else "a"]
    agents.wait_standby_of(b.name, a.name)
    a.put(b"k", b"1", level=store_pb2.COMMIT_ON)
    a.kill()
    wait_for(lambda: leader_gone(etcd, agents.cluster), timeout=TIMING["ttl"] + 20, what="lease expiry")
    assert promote(b, 2).changed
    b.put(b"k", b"2")
    a.start()
    accepted = []

    def probe_writes():
        try:
            accepted.append(a.put(b"intruder", b"x", timeout=1))
        except grpc.RpcError:
            pass
        s = a.status()
        return s.engine.role == ROLE_STANDBY and s.engine.streaming and \
            s.engine.upstream == f"{b.name}@{b.data_address}"
    wait_for(probe_writes, timeout=40, interval=0.05, what="restarted old primary streaming from b")
    assert not accepted, "the restarted old primary acknowledged a write"
    wait_for(lambda: a.get(b"k").value == b"2", what="rejoined node has the new leader's data")
    assert b.get(b"intruder").found is False


def test_quickly_restarted_primary_starts_fenced_until_promoted(agents, etcd):
    a = agents.add("a")
    agents.wait_primary()
    a.put(b"k", b"1")
    a.kill()
    a.start()          # within the ttl: the leader key still names a, under its dead lease
    refused = []

    def fenced_and_waiting():
        try:
            a.put(b"intruder", b"x", timeout=1)
            raise AssertionError("a restarted primary without the leader key acknowledged a write")
        except grpc.RpcError as exc:
            refused.append(exc.code())
        s = a.status()
        return s.engine.role == ROLE_PRIMARY and s.engine.fenced and not s.holds_leader and \
            leader_gone(etcd, agents.cluster)
    wait_for(fenced_and_waiting, timeout=TIMING["ttl"] + 30, interval=0.1,
             what="old lease expired while the restarted primary stays fenced")
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}
    # Nobody else is there: the orchestrator would promote it, here we do.
    assert promote(a, 2).changed
    wait_for(lambda: a.put(b"k", b"2").term == 2, what="writes after promotion")
    assert a.get(b"intruder").found is False


def test_etcd_outage_fences_the_primary(agents, etcd):
    a = agents.add("a")
    agents.wait_primary()
    a.put(b"k", b"1")
    etcd.pause()
    try:
        # Renewals fail from now on; past ttl - safety_margin the primary must refuse writes.
        def refused():
            try:
                a.put(b"during-outage", b"x", timeout=2)
                return False
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.UNAVAILABLE
        wait_for(refused, timeout=TIMING["ttl"] + 20, what="primary fenced while etcd is unreachable")
        # The engine refuses on its own at the lease deadline; the agent's next
        # loop (it cannot renew) then fences it explicitly, which status shows.
        wait_for(lambda: a.status().engine.fenced, timeout=10, what="agent fenced the engine")
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError):
            a.put(b"still-during-outage", b"x", timeout=2)
    finally:
        etcd.resume()
    # After the outage: either the lease survived (reconfirmed) or it expired (fenced, no leader);
    # in the second case a Promote with the next term brings it back.
    def settled():
        s = a.status()
        if s.holds_leader and not s.engine.fenced:
            return "reconfirmed"
        if not s.holds_leader and s.engine.fenced and leader_gone(etcd, agents.cluster):
            return "expired"
        return None
    how = wait_for(settled, timeout=TIMING["ttl"] + 30, what="agent settles after the etcd outage")
    if how == "expired":
        promote(a, 2)
    wait_for(lambda: a.put(b"k", b"2").term >= 1, what="writes accepted again")
