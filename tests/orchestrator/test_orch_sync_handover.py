"""Synchronous mode, real processes: the new primary has no standby yet.

The primary a is SIGKILLed while the third node is frozen (SIGSTOP), so the
new primary (the member of a's synchronous set) has nobody to replicate to.
It must acknowledge no write at commit level ``on`` (issue 10 item 5: it
used to get an empty set published and acknowledge alone). Then the new
primary is SIGKILLed too and the third node thawed: it flushed everything
the new primary had when it was promoted, so it must be promoted (item 2:
the orchestrator used to stay in no_candidate, "no synchronous set is
published", forever) with every acknowledged write.
"""
from __future__ import annotations

import signal
import threading

import grpc
import pytest

from orch_procs import procs, wait_for  # noqa: F401  (procs is a fixture)
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import store_pb2

pytestmark = pytest.mark.integration


def test_new_primary_without_standby_acks_nothing_and_its_death_is_survived(procs, etcd):
    first, _ = procs.cluster3()
    procs.orchestrator("o1", synchronous_mode=True)
    with Dcs([etcd.endpoint], procs.cluster) as dcs:
        view = wait_for(lambda: (v := dcs.read_view()).sync is not None and v.sync.num == 1 and v,
                        timeout=90, what="a synchronous set is published")
        heir = procs.agents[view.sync.names[0]]
        third = next(a for a in procs.agents.values() if a not in (first, heir))
        acked = []
        for i in range(20):
            key = f"k{i}".encode()
            wait_for(lambda: first.put(key, b"v", level=store_pb2.COMMIT_ON), timeout=20, what=f"write {i}")
            acked.append(key)
        wait_for(lambda: third.status().engine.flush_lsn >= heir.status().engine.flush_lsn
                 and third.get(acked[-1]).found, what=f"{third.name} caught up")
        third.signal(signal.SIGSTOP)
        try:
            first.kill()
            wait_for(lambda: (v := dcs.read_view()).leader is not None and v.leader.name == heir.name,
                     timeout=30, what=f"{heir.name} leads")
            procs.primary(names=[heir.name], timeout=30)
            # No standby streams from the new primary: a write at 'on' must wait, not be acknowledged.
            outcome: list = []
            writer = threading.Thread(target=_try_put, args=(heir, b"alone", outcome))
            writer.start()
            writer.join(timeout=3.0)
            assert outcome != ["acked"], "the new primary acknowledged a write at 'on' with no synchronous standby"
            heir.kill()
            writer.join()
        finally:
            third.signal(signal.SIGCONT)
        assert procs.primary(names=[third.name], timeout=60) is third
        for key in acked:
            assert third.get(key).found, f"acknowledged write {key!r} lost"
        assert outcome != ["acked"] or third.get(b"alone").found


def _try_put(agent, key: bytes, outcome: list) -> None:
    try:
        agent.put(key, b"v", timeout=20.0, level=store_pb2.COMMIT_ON)
        outcome.append("acked")
    except grpc.RpcError as exc:
        outcome.append(exc.code().name)
