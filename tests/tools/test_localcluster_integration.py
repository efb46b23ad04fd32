"""``walrus cluster up`` + ``walrus ctl`` + ``walrus cluster down`` as real
subprocesses: a 3-node embedded cluster with etcd and 2 orchestrators; every
process it started is gone afterwards."""
import json
import os
import subprocess
import sys

import pytest

from walrus_ha.common import procs
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

WALRUS = [sys.executable, "-m", "walrus_ha"]


def walrus(*args, timeout=120):
    return subprocess.run(WALRUS + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cluster_dir(tmp_path):
    d = tmp_path / "cluster"
    yield d
    # Whatever happened in the test: stop every process it may have left (by verified PID).
    if (d / "cluster.json").exists():
        LocalCluster.load(str(d)).stop_all(timeout_s=5.0)


def test_up_ctl_down(cluster_dir):
    up = walrus("cluster", "up", "--nodes", "3", "--dir", str(cluster_dir), "--json", "--timeout", "90")
    assert up.returncode == 0, up.stderr + up.stdout
    info = json.loads(up.stdout)
    handles = [procs.ProcHandle.from_json(p["handle"]) for p in info["processes"].values()]
    assert len(handles) == 1 + 3 + 2
    assert all(procs.is_ours(h) for h in handles)
    assert info["leader"] in info["members"]

    listed = walrus("ctl", "list", "--json", "--dir", str(cluster_dir))
    assert listed.returncode == 0, listed.stderr
    members = json.loads(listed.stdout)
    assert sorted(m["name"] for m in members["members"]) == ["node1", "node2", "node3"]
    assert members["leader"]["name"] == info["leader"]
    assert all("/" in m["flush_lsn"] for m in members["members"])

    leader = walrus("ctl", "leader", "--dir", str(cluster_dir))
    assert leader.returncode == 0, leader.stderr
    assert leader.stdout.startswith(info["leader"])

    status = walrus("cluster", "status", "--json", "--dir", str(cluster_dir))
    assert status.returncode == 0 and json.loads(status.stdout)["healthy"] is True

    down = walrus("cluster", "down", "--dir", str(cluster_dir))
    assert down.returncode == 0, down.stderr + down.stdout
    assert not any(procs.is_ours(h) for h in handles)

    # 'up' on a stopped cluster restarts it as it was; 'down' stops it again.
    again = walrus("cluster", "up", "--dir", str(cluster_dir), "--json", "--timeout", "90")
    assert again.returncode == 0, again.stderr + again.stdout
    restarted = [procs.ProcHandle.from_json(p["handle"]) for p in json.loads(again.stdout)["processes"].values()]
    assert json.loads(again.stdout)["members"] == info["members"]
    assert walrus("cluster", "down", "--dir", str(cluster_dir)).returncode == 0
    assert not any(procs.is_ours(h) for h in restarted)


def test_up_refuses_a_malformed_cluster_json(tmp_path):
    (tmp_path / "cluster.json").write_text("{}")
    result = walrus("cluster", "up", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "malformed" in result.stderr


def test_down_without_a_cluster_is_a_clear_error(tmp_path):
    result = walrus("cluster", "down", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "no cluster" in result.stderr


@pytest.fixture
def running_cluster(tmp_path):
    """A 3-node embedded cluster started through the library; stopped by PID afterwards."""
    from walrus_ha.tools.localcluster import ClusterSpec
    cluster = LocalCluster.create(ClusterSpec(directory=str(tmp_path / "c"), nodes=3))
    try:
        cluster.start_all()
        cluster.wait_healthy(90.0)
        yield cluster
    finally:
        cluster.stop_all(timeout_s=5.0)


def _poll(fn, timeout_s=30.0):
    import time
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_ctl_operations(running_cluster):
    d = running_cluster.directory
    # Each member's HTTP API base URL: in ctl list --json and in cluster.json, the same.
    listed = json.loads(walrus("ctl", "list", "--json", "--dir", d).stdout)["members"]
    with open(os.path.join(d, "cluster.json")) as f:
        planned = {n: m["http"] for n, m in json.load(f)["members"].items()}
    assert {m["name"]: m["http"] for m in listed} == planned
    assert all(url.startswith("http://127.0.0.1:") for url in planned.values())
    old = json.loads(walrus("ctl", "leader", "--json", "--dir", d).stdout)["name"]
    watch = subprocess.Popen(WALRUS + ["ctl", "leader", "--watch", "--json", "--dir", d],
                             stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(watch.stdout.readline())
        assert first["name"] == old
        explain = json.loads(walrus("ctl", "explain", "--json", "--dir", d).stdout)
        target = explain["winner"]
        assert target and target != old
        sw = walrus("ctl", "switchover", "--to", target, "--dir", d)
        assert sw.returncode == 0, sw.stderr + sw.stdout
        # The watcher prints every change; the last one names the new leader.
        seen = [first]
        while not (seen[-1].get("present") and seen[-1]["name"] == target):
            seen.append(json.loads(watch.stdout.readline()))
    finally:
        watch.terminate()
        watch.wait(timeout=10)
    # The history record is written when the orchestrator finishes, a moment after the leader changed.
    assert _poll(lambda: any(r["kind"] == "switchover" and r["new_leader"] == target
                             for r in json.loads(walrus("ctl", "history", "--json", "--dir", d).stdout)["records"]))
    bad = walrus("ctl", "switchover", "--to", "nobody", "--dir", d)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr
    assert walrus("ctl", "pause", "--dir", d).returncode == 0
    assert _poll(lambda: json.loads(walrus("ctl", "list", "--json", "--dir", d).stdout)["paused"])
    assert walrus("ctl", "resume", "--dir", d).returncode == 0
    assert _poll(lambda: not json.loads(walrus("ctl", "list", "--json", "--dir", d).stdout)["paused"])
