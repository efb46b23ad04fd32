"""``walrus ctl dsn`` on a real PostgreSQL local cluster (etcd, 2 agents,
2 orchestrators): the printed libpq strings connect, the primary's to a
server that takes writes, the replicas' to one in recovery."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from support_wait import wait_for
from walrus_ha.tools.localcluster import ClusterSpec
from walrus_ha.tools.localcluster.cluster import LocalCluster
from walrus_ha.tools.localcluster.render import EngineKind

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

WALRUS = [sys.executable, "-m", "walrus_ha"]


@pytest.fixture
def pg_cluster():
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres.binaries import find_binaries
    try:
        find_binaries()
    except EngineError as exc:
        pytest.skip(str(exc))
    # Not under tmp_path: the postgres user must reach the data dirs (pytest's are 0700).
    base = tempfile.mkdtemp(prefix="walrus-dsn-", dir="/tmp")
    os.chmod(base, 0o711)
    c = LocalCluster.create(ClusterSpec(directory=str(pathlib.Path(base) / "c"), nodes=2,
                                        engine=EngineKind.POSTGRES))
    try:
        c.start_all()
        c.wait_healthy(120.0)
        yield c
    finally:
        c.stop_all(timeout_s=5.0)
        shutil.rmtree(base, ignore_errors=True)


def _ctl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(WALRUS + ["ctl", *args, "--dir", cluster.directory], capture_output=True, text=True,
                          timeout=60)


def test_dsn_strings_connect(pg_cluster):
    import psycopg
    primary = json.loads(_ctl(pg_cluster, "dsn", "--json").stdout)
    assert primary["engine"] == "postgres" and "target_session_attrs=read-write" in primary["dsn"]
    assert _ctl(pg_cluster, "dsn").stdout.strip() == primary["dsn"]
    with psycopg.connect(primary["dsn"] + " connect_timeout=5", autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        conn.execute("CREATE TABLE IF NOT EXISTS dsn_probe (k int)")
        port = conn.execute("SELECT current_setting('port')").fetchone()[0]
    assert primary["addresses"] == [f"127.0.0.1:{port}"]

    def replica_ready():                       # the standby may still be starting its stream
        r = _ctl(pg_cluster, "dsn", "--role", "replica", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None
    replica = wait_for(replica_ready, timeout=60.0, interval=0.2, what="a streaming replica")
    assert "target_session_attrs=standby" in replica["dsn"], replica
    with psycopg.connect(replica["dsn"] + " connect_timeout=5", autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
