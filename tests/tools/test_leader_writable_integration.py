"""WatchLeader says when the new leader accepts writes (issue 10, item 13).

A real local cluster (etcd, 3 agents, 2 orchestrators; synchronous mode) on
each engine; SIGKILL the primary's agent while a client follows WatchLeader.
The first event that names the new leader *writable* must be enough: one
write sent at once to that leader is acknowledged (no "read-only standby",
"engine is fenced: taking leadership" or read-only transaction error).
"""
from __future__ import annotations

import json
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

from walrus_ha.tools.drill.workload import EmbeddedBackend, WriteFailed
from walrus_ha.tools.localcluster import ClusterSpec
from walrus_ha.tools.localcluster.cluster import LocalCluster
from walrus_ha.tools.localcluster.render import EngineKind

pytestmark = pytest.mark.integration


def _require_postgres() -> None:
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres.binaries import find_binaries
    try:
        find_binaries()
    except EngineError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request):
    engine = EngineKind(request.param)
    if engine is EngineKind.POSTGRES:
        _require_postgres()
    # Not under tmp_path: the postgres user must reach the data dirs (pytest's are 0700).
    base = tempfile.mkdtemp(prefix="walrus-writable-", dir="/tmp")
    os.chmod(base, 0o711)
    c = LocalCluster.create(ClusterSpec(directory=str(pathlib.Path(base) / "c"), nodes=3, engine=engine, sync=True))
    try:
        c.start_all()
        c.wait_healthy(120.0)
        yield c
    finally:
        c.stop_all(timeout_s=5.0)
        shutil.rmtree(base, ignore_errors=True)


def _write_once(cluster: LocalCluster, address: str, key: str) -> None:
    """One synchronous write to ``address``; raises WriteFailed unless acknowledged.
    A long timeout: waiting for a synchronous standby is not an error here."""
    if cluster.spec.engine is EngineKind.EMBEDDED:
        backend = EmbeddedBackend(address, sync=True, timeout_s=20.0)
        try:
            backend.write(key, "v")
        finally:
            backend.close()
        return
    from walrus_ha.tools.drill.pg_backend import PgWriter
    writer = PgWriter(address, statement_timeout_ms=20000)
    try:
        writer.write(key, "v")
    except Exception as exc:    # psycopg errors: not acknowledged
        raise WriteFailed(f"{address}: {exc}") from None
    finally:
        writer.close()


def test_first_writable_event_names_a_leader_that_accepts_writes(cluster):
    old = cluster.wait_healthy(60.0).leader
    _write_once(cluster, cluster.data_address(old), "before")   # creates the drill table on PostgreSQL
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def follow():
        for leader in cluster.client().watch_leader(stop):
            events.put(leader)
    threading.Thread(target=follow, daemon=True).start()
    first = events.get(timeout=10)
    assert first.present and first.name == old and first.writable
    ctl = subprocess.Popen([sys.executable, "-m", "walrus_ha", "ctl", "leader", "--watch", "--writable", "--json",
                            "--dir", cluster.directory], stdout=subprocess.PIPE, text=True)
    printed: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [printed.put(json.loads(line)) for line in ctl.stdout], daemon=True).start()
    try:
        assert printed.get(timeout=30)["name"] == old

        cluster.kill(old)
        _follow_and_write(cluster, old, first, events, stop)
        # 'ctl leader --watch --writable' printed the new leader next, once it was writable.
        line = printed.get(timeout=30)
        assert line["name"] != old and line["writable"] is True
    finally:
        ctl.terminate()
        ctl.wait(timeout=10)


def _follow_and_write(cluster, old, first, events, stop) -> None:
    seen = []
    try:
        while True:
            leader = events.get(timeout=60)
            seen.append((leader.name, leader.term, leader.writable))
            if leader.present and leader.name != old and leader.writable:
                break
        # Write at once, the way a client following the stream does.
        _write_once(cluster, leader.data_address, "after")
    finally:
        stop.set()
    assert leader.term > first.term, seen
    if cluster.spec.engine is EngineKind.POSTGRES:
        _write_multi_host(cluster, old, leader.data_address)


def _write_multi_host(cluster: LocalCluster, dead: str, new_leader: str) -> None:
    """The README's PostgreSQL client: a libpq multi-host string over every
    member (the dead one first) with target_session_attrs=read-write lands
    on the new primary."""
    import psycopg
    hosts = [cluster.data_address(dead)] + [cluster.data_address(n) for n in cluster.node_names() if n != dead]
    url = (f"postgresql://postgres@{','.join(hosts)}/postgres"
           "?target_session_attrs=read-write&connect_timeout=2")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO walrus_drill (k, v) VALUES ('multi-host', 'v')")
        port = conn.execute("SELECT current_setting('port')").fetchone()[0]
    assert f"127.0.0.1:{port}" == new_leader
