"""A PostgreSQL primary on a full disk is replaced and rejoins (issue 12).

Real processes: etcd, three ``walrus node`` agents running PostgreSQL 15 and
``walrus orchestrator`` in synchronous mode. The first primary's data
directory is on a small tmpfs (as ``walrus drill disk-full``'s SmallDisks)
that the test fills with a ballast file. Before the fix its Demote never
completed: the lease fencer SIGSTOPped the postmaster and died writing its
record (ENOSPC), so the fast and immediate shutdowns waited on a stopped
process, the failover was abandoned and the old primary led again. Now the
old primary must stop, hand over to a synchronous standby that holds every
acknowledged write, and stream from it once the space is freed.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import psycopg
import pytest

from orch_procs import Procs, history, wait_for
from test_orch_disk_full import fill
from walrus_ha.tools.drill.pg_backend import PgWriter

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SMALL_FS = "128m"       # as SmallDisks: initdb + a few WAL segments, the ballast takes the rest
AGENT = {"engine": "postgres", "ttl": 10.0, "loop_wait": 0.5, "retry_timeout": 3.0, "safety_margin": 1.0,
         "bootstrap_wait": 0.5}
ORCH = {"ttl": 10.0, "loop_wait": 0.3, "retry_timeout": 3.0, "rpc_timeout": 5.0, "synchronous_mode": True}
BIG = "x" * (256 * 1024)


@pytest.fixture
def pg_disk(etcd, cluster_name, request):
    """(Procs under a 0711 /tmp dir the ``postgres`` user can reach, a small tmpfs in it)."""
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres.binaries import find_binaries
    try:
        find_binaries("")
    except EngineError as exc:
        pytest.skip(str(exc))
    base = pathlib.Path(tempfile.mkdtemp(prefix="walrus-diskfull-pg-", dir="/tmp"))
    os.chmod(base, 0o711)
    small = base / "smallfs"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS},mode=0711", "tmpfs", str(small)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode})")
    group = Procs(base, etcd.endpoint, cluster_name)
    failed_before = request.session.testsfailed
    try:
        yield group, small
    finally:
        group.close()
        if request.session.testsfailed > failed_before:
            import sys
            sys.stderr.write(group.dump_logs())
        if subprocess.run(["umount", str(small)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_primary_on_a_full_disk_is_replaced_and_rejoins(pg_disk, etcd):
    procs, small = pg_disk
    a = procs.agent("a", data_dir=str(small / "a"), **AGENT)
    procs.primary(["a"], timeout=120)
    procs.agent("b", **AGENT)
    procs.agent("c", **AGENT)
    primary, _ = procs.cluster3(timeout=180)
    assert primary.name == "a"
    procs.orchestrator("o1", primary_write_failure_timeout=2.0, **ORCH)
    w = PgWriter(a.data_address, statement_timeout_ms=5000)
    acked: dict[str, str] = {}

    def write(key: str, value: str) -> bool:
        try:
            w.write(key, value)
        except psycopg.Error:
            return False
        acked[key] = value
        return True

    def sync_standby_published() -> bool:      # then every commit waits for a synchronous standby
        return bool(a.status().engine.sync_standbys)
    wait_for(sync_standby_published, 60, what="a synchronous standby of a")
    for i in range(20):
        wait_for(lambda: write(f"k{i}", "v"), 30, what=f"write k{i}")
    fill(small)
    n = [0]

    def write_fails() -> bool:
        n[0] += 1
        return not write(f"x{n[0]}", BIG)      # big: new pages and WAL segments soon
    wait_for(write_fails, 60, what="a write that fails on the full disk")
    new = procs.primary(["b", "c"], timeout=90)
    rec = wait_for(lambda: [h for h in history(etcd.endpoint, procs.cluster) if h.old_leader == "a"],
                   30, what="the history record")[-1]
    assert (rec.kind, rec.new_leader) == ("failover", new.name)
    orch_log = procs.orchs["o1"].log_text()
    assert "failover: a cannot write" in orch_log           # a's Demote finished: no lease expiry needed
    assert "abandoned" not in orch_log, orch_log[-3000:]
    reader = PgWriter(new.data_address)
    assert reader.read_values(list(acked)) == acked     # no acknowledged write lost
    assert a.running                                    # the agent lived through it
    os.unlink(small / "ballast")
    procs.standby_of("a", new.name, timeout=120)
    assert PgWriter(a.data_address).read_values(list(acked)) == acked
