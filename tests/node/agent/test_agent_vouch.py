"""``vouch.problem``: which terms and upstreams an etcd view vouches for (pure)."""
from __future__ import annotations

import pytest

from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord
from walrus_ha.node.agent import vouch
from walrus_ha.node.engine.base import Upstream

VIEW = ClusterView(term=4, leader=LeaderRecord(name="a", term=4, data_address="127.0.0.1:7001"),
                   members=(MemberRecord(name="a", data_address="127.0.0.1:7001"),
                            MemberRecord(name="b", data_address="127.0.0.1:7002")))


@pytest.mark.parametrize("term,upstream,words", [
    (4, Upstream("a", "127.0.0.1:7001"), None),
    (3, Upstream("a", "127.0.0.1:7001"), None),                   # older terms: the stale check decides
    (4, Upstream("b", "127.0.0.1:7002"), None),                   # any known member at its address
    (4, None, None),
    (5, None, "newer than the cluster's term 4"),
    (2 ** 64 - 1, Upstream("a", "127.0.0.1:7001"), "newer than the cluster's term 4"),
    (4, Upstream("ghost", "127.0.0.1:1"), "unknown member 'ghost'"),
    (4, Upstream("a", "127.0.0.1:1"), "not at '127.0.0.1:1'"),
    (1, Upstream("x" * 1000, "127.0.0.1:1"), "(1000 characters)"),
])
def test_problem(term, upstream, words):
    why = vouch.problem(VIEW, term, upstream)
    if words is None:
        assert why is None
    else:
        assert words in why and len(why) < 300


def test_an_emptied_etcd_vouches_for_nothing():
    assert "cluster's term 0" in vouch.problem(ClusterView(), 1, None)
