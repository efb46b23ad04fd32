"""The RPO receipt: ``last_primary_lsn`` is the freshest the orchestrator
knows (probe, member record, the primary's status stream) and the history
record never reports fewer bytes than were actually lost; after a failover
the reason says it is a lower bound ("at least N bytes").

The scripted loss (real processes): both standbys are SIGSTOPped, the
primary acknowledges writes alone (asynchronous mode), its member record
shows them, then it is SIGKILLed and the standbys resumed: the acknowledged
writes past the promoted standby's LSN are lost, and the receipt must count
at least those bytes.
"""
from __future__ import annotations

import signal

import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.common.dcs import Dcs
from walrus_ha.orchestrator.agents import AgentPool
from walrus_ha.orchestrator.snapshot import PrimaryLsnTracker


def test_tracker_merge_counts_only_reports_for_the_current_term():
    t = PrimaryLsnTracker()
    t.term, t.lsn = 3, 100
    assert t.merge((3, 150)) == 150
    assert t.merge((3, 120)) == 150          # never moves back
    assert t.merge((2, 900)) == 150          # an older term's primary says nothing about this one
    assert t.merge(None) == 150


def test_pool_keeps_a_closed_agents_last_primary_push():
    pool = AgentPool(0.5)
    pool.set_members({"a": "127.0.0.1:1"})
    pool._agents["a"].primary_flush = (2, 4096)
    pool.set_members({})                     # the dead primary's keys vanished
    assert pool.primary_flush("a") == (2, 4096)
    assert pool.primary_flush("b") is None
    pool.close()


@pytest.mark.integration
def test_receipt_counts_at_least_the_acknowledged_bytes_lost(procs, etcd):
    primary, standbys = procs.cluster3()
    procs.orchestrator("o1")
    for i in range(10):
        primary.put(f"base{i}".encode(), b"v")
    for s in standbys:
        wait_for(lambda: s.get(b"base9").found, what=f"{s.name} has the base writes")
    for s in standbys:
        s.signal(signal.SIGSTOP)
    try:
        acked = [(f"lost{i}".encode(), primary.put(f"lost{i}".encode(), b"x" * 200).lsn) for i in range(20)]
        top = max(lsn for _, lsn in acked)
        with Dcs([etcd.endpoint], procs.cluster) as dcs:
            wait_for(lambda: (m := dcs.read_view().member(primary.name)) is not None and m.flush_lsn >= top,
                     timeout=10, what="the primary's member record shows the last acknowledged write")
        primary.kill()
    finally:
        for s in standbys:
            s.signal(signal.SIGCONT)

    def record():
        return next((h for h in history(etcd.endpoint, procs.cluster) if h.term >= 2), None)
    h = wait_for(record, timeout=60, what="the failover's history record")
    winner = procs.agents[h.new_leader]
    missing = [(k, lsn) for k, lsn in acked if not winner.get(k).found]
    assert missing, "the scripted case should lose the writes the stopped standbys never received"
    actually_lost = max(lsn for _, lsn in missing) - h.promoted_lsn
    assert h.last_primary_lsn >= top
    assert h.bytes_possibly_lost >= actually_lost > 0
    assert f"at least {h.bytes_possibly_lost} bytes" in h.reason
