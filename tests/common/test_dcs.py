"""Dcs against a real etcd: leases, leader election, view, CAS, history, failures."""
from __future__ import annotations

import threading
import time

import pytest

from support_dcs import current_orchestrator, delete_member, lease_ttl, request_switchover
from walrus_ha.common.dcs import Dcs, parse_endpoints
from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.records import HistoryRecord, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.tools.etcd_server import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def dcs(etcd_session, cluster_name):
    with Dcs([etcd_session.endpoint], cluster_name, timeout_s=2.0) as d:
        yield d


def poll(predicate, deadline_s: float = 15.0, interval: float = 0.05):
    """Wait until predicate() is truthy; fail after a generous deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {deadline_s}s")


# -- endpoints ------------------------------------------------------------
@pytest.mark.parametrize("given,expected", [
    ("127.0.0.1:2379", ["127.0.0.1:2379"]),
    ("http://a:1,b:2", ["a:1", "b:2"]),
    (["http://a:1/", " b:2 "], ["a:1", "b:2"]),
])
def test_parse_endpoints(given, expected):
    assert parse_endpoints(given) == expected


@pytest.mark.parametrize("bad", ["", "a", "a:b", ":1"])
def test_parse_endpoints_rejects(bad):
    with pytest.raises(ValueError):
        parse_endpoints(bad)


# -- leases ---------------------------------------------------------------
def test_lease_grant_and_refresh(dcs):
    lease = dcs.grant_lease(5)
    assert 0 < dcs.refresh_lease(lease) <= 5
    assert 0 < lease_ttl(dcs, lease) <= 5


def test_one_second_lease_expires_and_refresh_reports_lease_lost(dcs):
    lease = dcs.grant_lease(1)
    dcs.put_member(lease, MemberRecord("a"))
    assert dcs.read_view().member("a") is not None
    # Poll without refreshing (a refresh would keep it alive).
    poll(lambda: dcs.read_view().member("a") is None)
    assert lease_ttl(dcs, lease) <= 0
    with pytest.raises(LeaseLost):
        dcs.refresh_lease(lease)


def test_revoked_lease_is_lost_for_refresh_and_writes(dcs):
    lease = dcs.grant_lease(10)
    dcs.revoke_lease(lease)
    with pytest.raises(LeaseLost):
        dcs.refresh_lease(lease)
    with pytest.raises(LeaseLost):
        dcs.put_member(lease, MemberRecord("a"))
    with pytest.raises(LeaseLost):
        dcs.acquire_leader(lease, LeaderRecord("a"), 0)
    dcs.revoke_lease(lease)  # already gone: fine


def test_member_put_and_delete(dcs):
    lease = dcs.grant_lease(10)
    dcs.put_member(lease, MemberRecord("a", flush_lsn=5))
    dcs.put_member(lease, MemberRecord("a", flush_lsn=9))
    assert dcs.read_view().member("a").flush_lsn == 9
    assert delete_member(dcs, "a") is True
    assert delete_member(dcs, "a") is False
    assert dcs.read_view().members == ()


# -- leader -----------------------------------------------------------------
def test_acquire_leader_bumps_term_and_binds_the_lease(dcs):
    lease = dcs.grant_lease(10)
    assert dcs.acquire_leader(lease, LeaderRecord("a", timeline=1), 0) == 1
    view = dcs.read_view()
    assert view.term == 1 and view.leader.name == "a" and view.leader.term == 1
    assert view.leader_lease == lease
    # Retried after a success (e.g. the first answer was lost): same term, not a refusal.
    assert dcs.acquire_leader(lease, LeaderRecord("a", timeline=1), 0) == 1
    other = dcs.grant_lease(10)
    assert dcs.acquire_leader(other, LeaderRecord("b"), 1) is None   # leader present
    assert dcs.read_view().leader.name == "a"


def test_concurrent_acquirers_exactly_one_wins(etcd_session, cluster_name):
    contenders = [Dcs([etcd_session.endpoint], cluster_name) for _ in range(6)]
    leases = [d.grant_lease(10) for d in contenders]
    barrier = threading.Barrier(len(contenders))
    results: dict[int, int | None] = {}

    def run(i: int) -> None:
        barrier.wait()
        results[i] = contenders[i].acquire_leader(leases[i], LeaderRecord(f"n{i}"), 0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(contenders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        winners = [i for i, term in results.items() if term is not None]
        assert len(results) == len(contenders) and len(winners) == 1
        assert results[winners[0]] == 1
        view = contenders[0].read_view()
        assert view.leader.name == f"n{winners[0]}" and view.term == 1
    finally:
        for d in contenders:
            d.close()


def test_stale_expected_term_is_refused_after_failover(dcs):
    a = dcs.grant_lease(10)
    assert dcs.acquire_leader(a, LeaderRecord("a"), 0) == 1
    dcs.revoke_lease(a)                          # the primary dies; its key goes
    b, c = dcs.grant_lease(10), dcs.grant_lease(10)
    assert dcs.acquire_leader(b, LeaderRecord("b"), 0) is None      # stale: term is 1
    assert dcs.acquire_leader(b, LeaderRecord("b"), 5) is None      # from the future: refused too
    assert dcs.acquire_leader(b, LeaderRecord("b"), 1) == 2
    dcs.revoke_lease(b)
    assert dcs.acquire_leader(c, LeaderRecord("c"), 1) is None      # b's term 2 won
    assert dcs.read_view().term == 2


def test_update_and_release_only_our_leader_key(dcs):
    mine, theirs = dcs.grant_lease(10), dcs.grant_lease(10)
    assert dcs.acquire_leader(mine, LeaderRecord("a"), 0) == 1
    assert dcs.update_leader(theirs, LeaderRecord("b", term=1)) is False
    assert dcs.update_leader(mine, LeaderRecord("a", term=1, timeline=2)) is True
    assert dcs.read_view().leader.timeline == 2
    assert dcs.release_leader(theirs, 1) is False
    assert dcs.release_leader(mine, 2) is False
    assert dcs.release_leader(mine, 1) is True
    view = dcs.read_view()
    assert view.leader is None and view.term == 1   # term is permanent


def test_revoke_leader_lease_only_for_the_expected_term(dcs):
    lease = dcs.grant_lease(30)
    dcs.put_member(lease, MemberRecord("a"))
    assert dcs.acquire_leader(lease, LeaderRecord("a"), 0) == 1
    assert dcs.revoke_leader_lease(0) is False
    assert dcs.read_view().leader is not None
    assert dcs.revoke_leader_lease(1) is True
    view = dcs.read_view()
    assert view.leader is None and view.member("a") is None
    assert dcs.revoke_leader_lease(1) is False      # nothing left to revoke


# -- bootstrap, orchestrator election ----------------------------------------
def test_claim_initialize_once(dcs):
    assert dcs.claim_initialize("a") is True
    assert dcs.claim_initialize("b") is False
    assert dcs.claim_initialize("a") is True        # idempotent for the holder
    assert dcs.read_view().initialize == "a"


def test_campaign_and_current_orchestrator(dcs):
    l1, l2 = dcs.grant_lease(10), dcs.grant_lease(10)
    assert current_orchestrator(dcs) is None
    assert dcs.campaign("o1", l1) is True
    assert dcs.campaign("o2", l2) is False
    assert dcs.campaign("o1", l1) is True
    assert current_orchestrator(dcs) == "o1"
    dcs.revoke_lease(l1)
    assert current_orchestrator(dcs) is None
    assert dcs.campaign("o2", l2) is True


# -- view, CAS, history ------------------------------------------------------
def test_read_view_is_one_consistent_snapshot(dcs):
    lease = dcs.grant_lease(10)
    for name in ("a", "b", "c"):
        dcs.put_member(lease, MemberRecord(name, flush_lsn=ord(name)))
    dcs.acquire_leader(lease, LeaderRecord("a"), 0)
    assert dcs.set_sync(SyncRecord("first", 1, ("b",), "a", 1), 0)
    dcs.put(dcs.keys.config, {"ttl": 10})
    dcs.set_pause(True)
    assert request_switchover(dcs, "a", "b", requested_by="test")
    dcs.put_failover_state({"term": 2})
    dcs.campaign("o1", lease)
    dcs.put_history(HistoryRecord(1, new_leader="a"))
    last = dcs.put(dcs.keys.member("garbage"), b"{not json")
    view = dcs.read_view()
    assert view.revision >= last
    assert [m.name for m in view.members] == ["a", "b", "c"]
    assert view.skipped == (dcs.keys.member("garbage"),)
    assert view.leader.name == "a" and view.term == 1
    assert view.sync.names == ("b",) and 0 < view.sync_mod_revision <= view.revision
    assert view.config == {"ttl": 10} and view.paused is True
    assert view.switchover["candidate"] == "b" and view.failover == {"term": 2}
    assert view.orchestrator == "o1"
    dcs.set_pause(False)
    assert dcs.clear_switchover() and dcs.clear_failover_state()
    view = dcs.read_view()
    assert not view.paused and view.switchover is None and view.failover is None


def test_read_view_sees_all_or_nothing_of_a_transaction(dcs):
    # acquire_leader writes leader and term together: no view shows one without the other.
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            v = dcs.read_view()
            if v.leader is not None and v.leader.term != v.term:
                bad.append(v)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for term in range(5):
            lease = dcs.grant_lease(10)
            assert dcs.acquire_leader(lease, LeaderRecord(f"n{term}"), term) == term + 1
            if term < 4:
                dcs.revoke_lease(lease)
    finally:
        stop.set()
        t.join(30)
    assert bad == []


def test_cas_put(dcs):
    key = dcs.keys.config
    assert dcs.cas_put(key, {"v": 1}, 0) is True
    assert dcs.cas_put(key, {"v": 2}, 0) is False          # must be absent
    value, rev = dcs.get(key)
    assert value == {"v": 1} and rev > 0
    assert dcs.cas_put(key, {"v": 3}, rev + 1000) is False  # wrong revision
    assert dcs.cas_put(key, {"v": 3}, rev) is True
    assert dcs.cas_put(key, {"v": 4}, rev) is False         # stale now
    assert dcs.get(key)[0] == {"v": 3}
    view = dcs.read_view()
    assert dcs.set_sync(SyncRecord("any", 1, ("a", "b")), view.sync_mod_revision) is True
    assert dcs.set_sync(SyncRecord("any", 2, ("a", "b")), view.sync_mod_revision) is False


def test_history_is_ordered_by_term_and_limited(dcs):
    for term in (3, 12, 1, 9, 10, 2, 11):
        dcs.put_history(HistoryRecord(term, new_leader=f"n{term}"))
    dcs.put(dcs.keys.history(4), b"garbage")
    assert [h.term for h in dcs.list_history(100)] == [1, 2, 3, 9, 10, 11, 12]
    assert [h.term for h in dcs.list_history(3)] == [10, 11, 12]
    # History is not part of the view (it only grows).
    assert dcs.read_view().skipped == ()


# -- etcd unreachable ------------------------------------------------------------
@pytest.mark.timeout(60)
def test_etcd_down_raises_dcs_unavailable(etcd):
    dcs = Dcs([etcd.endpoint], "c", timeout_s=0.5)
    try:
        lease = dcs.grant_lease(30)
        etcd.stop()
        for call in (lambda: dcs.read_view(deadline_s=1.0), lambda: dcs.refresh_lease(lease, deadline_s=1.0),
                     lambda: dcs.acquire_leader(lease, LeaderRecord("a"), 0), lambda: dcs.grant_lease(5)):
            with pytest.raises(DcsUnavailable):
                call()
        etcd.start()
        # Back: the same Dcs recovers (no endpoint is blacklisted), the lease survived.
        assert poll(lambda: _refresh_or_none(dcs, lease)) > 0
    finally:
        dcs.close()


def _refresh_or_none(dcs, lease):
    try:
        return dcs.refresh_lease(lease)
    except DcsUnavailable:
        return None


@pytest.mark.timeout(60)
def test_hung_etcd_raises_dcs_unavailable_not_lease_lost(etcd):
    dcs = Dcs([etcd.endpoint], "c", timeout_s=0.5)
    try:
        lease = dcs.grant_lease(30)
        etcd.pause()
        try:
            with pytest.raises(DcsUnavailable):
                dcs.refresh_lease(lease, deadline_s=1.5)
            with pytest.raises(DcsUnavailable):
                dcs.read_view(deadline_s=1.0)
        finally:
            etcd.resume()
        assert poll(lambda: _refresh_or_none(dcs, lease)) > 0
    finally:
        dcs.close()


def test_fails_over_to_the_next_endpoint(etcd_session, cluster_name):
    dead = f"127.0.0.1:{free_port()}"
    with Dcs([dead, etcd_session.endpoint], cluster_name, timeout_s=1.0) as dcs:
        lease = dcs.grant_lease(10)
        dcs.put_member(lease, MemberRecord("a"))
        assert dcs.read_view().member("a") is not None


def test_closed_dcs_refuses_calls(etcd_session, cluster_name):
    dcs = Dcs([etcd_session.endpoint], cluster_name)
    dcs.close()
    dcs.close()
    with pytest.raises(DcsUnavailable):
        dcs.read_view()


def test_only_the_dcs_layer_imports_etcd3():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2]
    allowed = {"common/dcs.py", "common/dcs_watch.py", "tools/etcd_server.py"}
    offenders = []
    for package in ("walrus_ha", "common", "tools", "node", "orchestrator", "protos"):
        for path in (root / package).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(errors="replace")
            if rel not in allowed and ("import etcd3" in text or "from etcd3" in text):
                offenders.append(rel)
    assert offenders == []
