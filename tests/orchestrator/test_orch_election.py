"""Election of the active orchestrator: real etcd for the race, a fake DCS
and clock for the renewal-deadline logic."""
from __future__ import annotations

import time

import pytest

from support_dcs import current_orchestrator
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.orchestrator.election import Election


def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_one_active_and_spare_takes_over_on_resign(etcd_session, cluster_name):
    d1 = Dcs([etcd_session.endpoint], cluster_name)
    d2 = Dcs([etcd_session.endpoint], cluster_name)
    try:
        e1, e2 = Election(d1, "o1", 2.0), Election(d2, "o2", 2.0)
        assert e1.tick() is True
        assert e2.tick() is False
        assert current_orchestrator(d2) == "o1"
        e1.resign()
        assert not e1.is_active()
        assert e2.tick() is True          # revoked at once: no wait for expiry
        assert current_orchestrator(d1) == "o2"
        e2.resign()
    finally:
        d1.close()
        d2.close()


def test_spare_takes_over_after_lease_expiry(etcd_session, cluster_name):
    d1 = Dcs([etcd_session.endpoint], cluster_name)
    d2 = Dcs([etcd_session.endpoint], cluster_name)
    try:
        e1, e2 = Election(d1, "o1", 1.0), Election(d2, "o2", 1.0)
        assert e1.tick()
        assert not e2.tick()
        # o1 stops ticking (as if frozen): its lease expires and o2 wins.
        assert wait_for(lambda: e2.tick())
        assert not e1.is_active()   # o1's own proof ran out before o2 could win
        e2.resign()
    finally:
        d1.close()
        d2.close()


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeDcs:
    def __init__(self):
        self.refresh_error = None
        self.revoked = []

    def grant_lease(self, ttl):
        return 7

    def refresh_lease(self, lease_id):
        if self.refresh_error:
            raise self.refresh_error
        return 10.0

    def revoke_lease(self, lease_id):
        self.revoked.append(lease_id)

    def campaign(self, orch_id, lease_id):
        return True


@pytest.mark.parametrize("error", [DcsUnavailable("etcd down"), LeaseLost("gone")], ids=["etcd-down", "lease-lost"])
def test_stops_acting_before_the_lease_can_expire(error):
    clock, dcs = FakeClock(), FakeDcs()
    e = Election(dcs, "o1", 10.0, clock=clock)
    assert e.tick()
    dcs.refresh_error = error
    clock.t += 5.0                      # renewal due (ttl/3), and it fails
    assert not e.tick()                 # a failed renewal: stop acting at once
    dcs.refresh_error = None
    assert e.tick()                     # key still ours / a new lease wins the free key


def test_a_hanging_renewal_stops_acting_at_its_deadline():
    clock, dcs = FakeClock(), FakeDcs()
    e = Election(dcs, "o1", 10.0, clock=clock)
    assert e.tick()
    clock.t += 8.9                      # no tick ran (renewal stuck): still within ttl - margin
    assert e.is_active()
    clock.t += 0.2                      # 9.1 s after the last successful renewal was sent
    assert not e.is_active()


def test_resign_revokes_the_lease():
    dcs = FakeDcs()
    e = Election(dcs, "o1", 10.0, clock=FakeClock())
    e.tick()
    e.resign()
    assert dcs.revoked == [7] and not e.is_active()


def test_announce_once_per_lease_and_failures_do_not_change_the_election():
    clock, dcs = FakeClock(), FakeDcs()
    calls, fail = [], [DcsUnavailable("etcd down")]

    def announce(lease):
        calls.append(lease)
        if fail:
            raise fail.pop()
    e = Election(dcs, "o1", 10.0, clock=clock, announce=announce)
    assert e.tick() and calls == [7]            # failed, but still active
    assert e.tick() and calls == [7, 7]         # retried, succeeded
    assert e.tick() and calls == [7, 7]         # not again for the same lease


def test_registered_orchestrators_in_etcd(etcd_session, cluster_name):
    from walrus_ha.common import registry
    d = Dcs([etcd_session.endpoint], cluster_name)
    try:
        e1 = Election(d, "o1", 2.0, announce=registry.announcer(d, "o1", "127.0.0.1:1", "9.9"))
        e2 = Election(d, "o2", 2.0, announce=registry.announcer(d, "o2", "127.0.0.1:2", "9.9"))
        assert e1.tick() and not e2.tick()
        active, records = registry.registered(d)
        assert active == "o1" and [(r.id, r.address, r.version) for r in records] == [
            ("o1", "127.0.0.1:1", "9.9"), ("o2", "127.0.0.1:2", "9.9")]
        assert [r.address for r in registry.ordered("o2", records)] == ["127.0.0.1:2", "127.0.0.1:1"]
        e1.resign()                              # the lease goes, and its record with it
        assert [r.id for r in registry.registered(d)[1]] == ["o2"]
        e2.resign()
    finally:
        d.close()
