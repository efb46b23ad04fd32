"""``Dcs.reseed`` against a real etcd: one transaction, only into an emptied keyspace."""
from __future__ import annotations

import pytest

from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import LeaderRecord, SyncRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def dcs(etcd_session, cluster_name):
    with Dcs([etcd_session.endpoint], cluster_name, timeout_s=2.0) as d:
        yield d


def test_reseed_puts_term_initialize_and_sync_then_promote_takes_the_next_term(dcs):
    sync = SyncRecord(method="first", num=1, names=("b",), leader="b", term=7)
    assert dcs.reseed(7, "b", sync)
    view = dcs.read_view()
    assert (view.term, view.initialize, view.sync) == (7, "b", sync)
    assert not dcs.reseed(9, "c")                       # the term exists: refused, nothing changed
    assert dcs.read_view().term == 7
    lease = dcs.grant_lease(5)
    assert dcs.acquire_leader(lease, LeaderRecord(name="b"), expected_term=7) == 8


def test_reseed_refused_while_a_leader_key_exists(dcs):
    lease = dcs.grant_lease(5)
    assert dcs.acquire_leader(lease, LeaderRecord(name="a"), expected_term=0) == 1
    dcs.delete(dcs.keys.term)
    assert not dcs.reseed(5, "b")
    view = dcs.read_view()
    assert view.term == 0 and view.leader is not None and view.initialize is None
