"""Operator requests on a real cluster (issue 13 parts 10 and 11): ``walrus
ctl restart`` of the primary keeps it leader with no failover, ``reinit``
re-clones a standby that then streams again, a scheduled switchover is
stored, listed and cancelled, and ``walrus_ha.client`` keeps writing across a
SIGKILL of the primary with no acknowledged write lost.

One cluster for the module (embedded engine, three agents, one
orchestrator, synchronous mode so that a failover loses nothing
acknowledged); every test first waits for a healthy cluster, so none depends
on another's order.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import uuid

import pytest

from orch_procs import Procs, history, wait_for
from walrus_ha.client import StoreWriter, connect
from walrus_ha.common.dcs import Dcs
from walrus_ha.tools import ctl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cl(tmp_path_factory, etcd_session, request):
    group = Procs(tmp_path_factory.mktemp("operator-ops"), etcd_session.endpoint, f"t-ops-{uuid.uuid4().hex[:8]}")
    failed_before = request.session.testsfailed
    try:
        group.cluster3()
        group.orch = group.orchestrator("o1", synchronous_mode=True)
        yield group
    finally:
        group.close()
        if request.session.testsfailed > failed_before:
            sys.stderr.write(group.dump_logs())


def healthy(cl: Procs):
    """Wait for one writable leader that the orchestrator reports, every
    running agent streaming from it, and a published synchronous set."""
    p = cl.primary(names=[n for n, a in cl.agents.items() if a.running], timeout=60)
    for a in cl.agents.values():
        if a is not p and a.running:
            cl.standby_of(a.name, p.name, timeout=60)
    wait_for(lambda: (lead := cl.orch.leader()).name == p.name and lead.writable, timeout=30,
             what="the orchestrator reports the writable leader")
    with Dcs([cl.etcd], cl.cluster) as dcs:
        view = wait_for(lambda: (v := dcs.read_view()).sync is not None and v.sync.leader == p.name and v,
                        timeout=30, what="the leader's synchronous set is published")
    return p, view


def run_ctl(capsys, *argv: str) -> tuple[int, dict]:
    parser = argparse.ArgumentParser()
    ctl.add_arguments(parser)
    args = parser.parse_args([*argv, "--orchestrators", "ORCH", "--json", "--timeout", "10"])
    args.orchestrators = run_ctl.address
    capsys.readouterr()
    rc = ctl.run(args)
    return rc, json.loads(capsys.readouterr().out)


def test_restart_of_the_primary_keeps_it_leader_without_a_failover(cl, capsys):
    p, _ = healthy(cl)
    run_ctl.address = cl.orch.address
    p.put(b"before-restart", b"1")
    term, records = cl.orch.leader().term, len(history(cl.etcd, cl.cluster))

    rc, out = run_ctl(capsys, "restart", p.name, "--role", "replica")
    assert rc == 1 and out["reason"] == "REFUSED" and "is the primary" in out["error"], out

    rc, out = run_ctl(capsys, "restart", p.name, "--role", "primary")
    assert rc == 0 and "engine restarted" in out["detail"], out
    q, _ = healthy(cl)
    assert q.name == p.name and cl.orch.leader().term == term
    assert len(history(cl.etcd, cl.cluster)) == records, "a planned restart records no failover"
    assert p.get(b"before-restart").value == b"1"
    wait_for(lambda: p.put(b"after-restart", b"2"), timeout=10, what="the restarted primary takes writes")


def test_reinit_recloned_standby_streams_again(cl, capsys):
    p, view = healthy(cl)
    run_ctl.address = cl.orch.address
    in_set = view.sync.names[0]
    other = next(n for n, a in cl.agents.items() if a.running and n not in (p.name, in_set))
    p.put(b"before-reinit", b"3")

    rc, out = run_ctl(capsys, "reinit", p.name)
    assert rc == 1 and "is the primary" in out["error"], out
    rc, out = run_ctl(capsys, "reinit", in_set)
    assert rc == 1 and "synchronous set" in out["error"], out

    marker = cl.agents[other].dir / "data" / "reinit-marker"
    marker.write_text("a re-clone replaces the data dir")
    rc, out = run_ctl(capsys, "reinit", other, "--wait", "--wait-timeout", "60")
    assert rc == 0 and out["outcome"] == "done", out
    assert not marker.exists(), "the data dir was not replaced"
    cl.standby_of(other, p.name)
    wait_for(lambda: cl.agents[other].get(b"before-reinit").value == b"3", what="the re-clone holds the data")


def test_scheduled_switchover_is_listed_and_cancelled(cl, capsys):
    p, view = healthy(cl)
    run_ctl.address = cl.orch.address
    at = (datetime.datetime.now().astimezone() + datetime.timedelta(hours=1)).isoformat(timespec="seconds")
    rc, out = run_ctl(capsys, "switchover", "--to", view.sync.names[0], "--scheduled", at)
    assert rc == 0 and "scheduled in" in out["detail"], out
    rc, listed = run_ctl(capsys, "list")
    assert listed["switchover_pending"] and listed["switchover_candidate"] == view.sync.names[0]
    assert listed["switchover_scheduled_at"] == pytest.approx(datetime.datetime.fromisoformat(at).timestamp())
    assert cl.orch.leader().name == p.name            # not before its time
    rc, out = run_ctl(capsys, "flush", "switchover")
    assert rc == 0 and "cancelled" in out["detail"], out
    rc, listed = run_ctl(capsys, "list")
    assert not listed["switchover_pending"]


def test_client_keeps_writing_across_a_sigkill_of_the_primary(cl):
    p, _ = healthy(cl)
    acked: dict[bytes, bytes] = {}
    with connect([cl.orch.address], timeout=20) as leaders:
        writer = StoreWriter(leaders, deadline_s=60)
        for i in range(40):
            acked[f"c{i}".encode()] = writer.put(f"c{i}".encode(), f"v{i}".encode()).name.encode()
        p.kill()
        for i in range(40, 120):
            acked[f"c{i}".encode()] = writer.put(f"c{i}".encode(), f"v{i}".encode()).name.encode()
        final = leaders.wait_writable(10)
        writer.close()
    try:
        assert final.name != p.name and {v.decode() for v in acked.values()} >= {p.name, final.name}
        new = cl.agents[final.name]
        lost = [k for k in acked if new.get(k).value != b"v" + k[1:]]
        assert lost == [], f"{len(lost)} acknowledged writes missing on {final.name}"
    finally:
        p.start()                                         # back as a standby for whatever runs next

