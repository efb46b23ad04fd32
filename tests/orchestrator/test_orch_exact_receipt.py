"""The exact RPO receipt (issue 10, item 7), real processes, embedded engine.

Both standbys are SIGSTOPped, the primary acknowledges writes alone
(asynchronous mode), then it is SIGKILLed and the standbys resumed: those
writes are lost. When the old primary comes back and rejoins, it rewinds
from the fork point to its WAL end and reports exactly what it discarded;
the orchestrator completes the failover's history record with it, and
``walrus ctl history`` shows it.
"""
from __future__ import annotations

import signal

import pytest

from orch_procs import history, procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.protos import cluster_pb2
from walrus_ha.tools.ctl import history_table

pytestmark = pytest.mark.integration


def test_rejoined_old_primary_completes_the_receipt_exactly(procs, etcd):
    primary, standbys = procs.cluster3()
    orch = procs.orchestrator("o1")
    for i in range(10):
        primary.put(f"base{i}".encode(), b"v")
    for s in standbys:
        wait_for(lambda: s.get(b"base9").found, what=f"{s.name} has the base writes")
    for s in standbys:
        s.signal(signal.SIGSTOP)
    try:
        acked = [f"lost{i}".encode() for i in range(25)]
        for k in acked:
            primary.put(k, b"x" * 200)
        primary.kill()
    finally:
        for s in standbys:
            s.signal(signal.SIGCONT)

    def record():
        return next((h for h in history(etcd.endpoint, procs.cluster) if h.term >= 2), None)
    h = wait_for(record, timeout=60, what="the failover's history record")
    assert h.discarded_by == "" and h.discarded_bytes == -1      # a lower bound until the old primary is back
    winner = procs.agents[h.new_leader]
    lost = [k for k in acked if not winner.get(k).found]
    assert len(lost) >= len(acked) - 5      # a few may have reached a standby before it stopped

    primary.start()
    procs.standby_of(primary.name, winner.name, timeout=60)

    def exact():
        r = next(r for r in history(etcd.endpoint, procs.cluster) if r.term == h.term)
        return r if r.discarded_by else None
    r = wait_for(exact, timeout=30, what="the receipt completed by the rejoined old primary")
    assert r.discarded_by == primary.name
    assert r.discarded_transactions == len(lost)                 # exactly the writes lost
    assert r.discarded_records >= r.discarded_transactions
    assert r.discarded_bytes >= len(lost) * 200
    assert r.discard_end_lsn - r.discard_fork_lsn >= r.discarded_bytes
    assert r.discard_fork_lsn >= h.promoted_lsn - 64 * 1024      # the fork is the new timeline's start

    reply = orch.cluster.History(cluster_pb2.HistoryRequest(limit=10), timeout=5)
    shown = next(x for x in reply.records if x.term == h.term)
    assert (shown.discarded_by, shown.discarded_transactions) == (primary.name, len(lost))
    assert f"exact: {r.discarded_bytes} B, {r.discarded_records} records, {len(lost)} writes" \
        in history_table(reply.records)
