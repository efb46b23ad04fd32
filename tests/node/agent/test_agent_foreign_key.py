"""A leader key that names this node under a lease the agent does not hold
must not keep it waiting forever (real agent process, real etcd).

The test plays the part of whatever keeps that lease alive: it takes the
leader key for the node's name at the next term under a lease of its own
and renews it. The restarted agent first waits for expiry (the normal case:
its previous incarnation's lease runs out within a ttl); once the key has
outlived two ttls it releases it by compare-and-delete on that lease and
term, so the cluster can elect a leader again.
"""
from __future__ import annotations

import threading
import time

import pytest

from agent_procs import TIMING, wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import LeaderRecord

pytestmark = pytest.mark.integration


def test_key_naming_us_under_a_foreign_live_lease_is_released(agents, etcd, cluster_name):
    a = agents.add("a")
    agents.wait_primary(["a"])
    a.stop()                                  # releases the key and revokes its lease
    with Dcs([etcd.endpoint], cluster_name) as dcs:
        term = dcs.read_view().term
        lease = dcs.grant_lease(TIMING["ttl"])
        stop = threading.Event()

        def keep_alive():
            while not stop.wait(TIMING["ttl"] / 4):
                try:
                    dcs.refresh_lease(lease)
                except Exception:
                    pass
        keeper = threading.Thread(target=keep_alive, daemon=True)
        keeper.start()
        try:
            rec = LeaderRecord(name="a", term=term + 1, timeline=1, agent_address=a.agent_address,
                               data_address=a.data_address, since=time.time())
            assert dcs.acquire_leader(lease, rec, expected_term=term) == term + 1
            a.start()
            wait_for(lambda: "does not hold" in a.log_text(), timeout=30, what="the agent waits for expiry")
            wait_for(lambda: dcs.read_view().leader is None, timeout=60,
                     what="the agent releases the key it cannot use")
            assert dcs.refresh_lease(lease) > 0, "the lease itself was still alive"
            assert "outlived its ttl" in a.log_text()
            assert not a.status().holds_leader
        finally:
            stop.set()
            keeper.join(timeout=5)
            dcs.revoke_lease(lease)


def _facts(**kw):
    from walrus_ha.node.agent.reconcile import Facts, LeaderFacts
    from walrus_ha.node.engine.base import Role
    base = dict(me="a", initialized=True, role=Role.PRIMARY, upstream="", engine_term=2, needs_reclone=False,
                held_term=0, leader=LeaderFacts("a", 3, "127.0.0.1:1", 2), highest_term=3)
    return Facts(**{**base, **kw})


def test_reconcile_waits_for_expiry_first_then_releases():
    from walrus_ha.node.agent.reconcile import Step, decide
    assert decide(_facts()).step is Step.WAIT_FOR_EXPIRY
    d = decide(_facts(foreign_lease_overdue=True))
    assert d.step is Step.RELEASE_KEY and d.term == 3
    assert decide(_facts(leader_lease_is_ours=True)).step is Step.RELEASE_KEY
