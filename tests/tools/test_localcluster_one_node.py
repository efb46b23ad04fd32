"""One process of a local cluster (issue 10, item 15): ``walrus cluster
start|stop|restart NAME``, and a node agent started by hand with ``walrus node
--config DIR/conf/nodeN.yaml`` is seen by ``cluster status`` and stopped by
``cluster down`` (found by the pid file it writes in its data dir, verified
before any signal). Real etcd, agents and orchestrators; every process is
stopped by PID."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from walrus_ha.common import pidfile, procs
from walrus_ha.tools.localcluster import ClusterSpec
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

WALRUS = [sys.executable, "-m", "walrus_ha"]


def walrus(*args, timeout=120):
    return subprocess.run(WALRUS + list(args), capture_output=True, text=True, timeout=timeout)


def _status(d) -> dict:
    result = walrus("cluster", "status", "--json", "--dir", str(d))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _poll(fn, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster.create(ClusterSpec(directory=str(tmp_path / "c"), nodes=3))
    try:
        c.start_all()
        c.wait_healthy(90.0)
        yield c
    finally:
        c.stop_all(timeout_s=5.0)


def _stop_pid(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_stop_start_by_hand_restart_and_down(cluster, tmp_path):
    d = cluster.directory
    stopped = walrus("cluster", "stop", "node3", "--dir", d)
    assert stopped.returncode == 0 and "node3: terminated" in stopped.stdout, stopped.stdout + stopped.stderr
    assert _status(d)["processes"]["node3"]["running"] is False

    # The way the README implied: run the agent by hand, from another directory.
    by_hand = subprocess.Popen(WALRUS + ["node", "--config", os.path.join(d, "conf", "node3.yaml")],
                               cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = _poll(lambda: _status(d)["processes"]["node3"]["pid"] == by_hand.pid,
                     what="cluster status to see the agent started by hand")
        assert seen
        cluster.wait_healthy(90.0)
        # The agent puts its pid file back if it goes (an embedded re-clone replaces the data dir).
        os.remove(pidfile.path_for(cluster.data_dir("node3")))
        _poll(lambda: _status(d)["processes"]["node3"]["pid"] == by_hand.pid, 30.0, "the pid file to come back")
        again = walrus("cluster", "start", "node3", "--dir", d)     # refuses to start a second one
        assert again.returncode == 0 and f"already running (pid {by_hand.pid})" in again.stdout

        before = _status(d)["processes"]["node2"]["pid"]
        restarted = walrus("cluster", "restart", "node2", "--dir", d)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        after = _status(d)["processes"]["node2"]["pid"]
        assert after and after != before
        cluster.wait_healthy(90.0)

        down = walrus("cluster", "down", "--dir", d)
        assert down.returncode == 0, down.stdout + down.stderr
        assert "node3: terminated" in down.stdout, down.stdout
        by_hand.wait(timeout=30)            # it is gone: 'down' stopped it
        assert not os.path.exists(pidfile.path_for(cluster.data_dir("node3")))   # removed on a clean stop
        assert not any(p["running"] for p in _status(d)["processes"].values())
    finally:
        _stop_pid(by_hand)


def test_a_stale_or_forged_pid_file_is_never_signalled(tmp_path):
    c = LocalCluster.create(ClusterSpec(directory=str(tmp_path / "c"), nodes=1))   # planned, not started
    data_dir = c.data_dir("node1")
    config = c.processes["node1"].plan.config_path
    os.makedirs(data_dir)
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        handle = _poll(lambda: (h := procs.handle_of(bystander.pid)) and h.cmdline == ("sleep", "120") and h,
                       10.0, "sleep to exec")
        forged = pidfile.AgentPid(handle, "node1", os.path.realpath(config), "")
        with open(pidfile.path_for(data_dir), "w") as f:
            json.dump(forged.to_json(), f)         # right pid and start time, but no walrus node
        assert c.current("node1") is None
        stop = walrus("cluster", "stop", "node1", "--dir", c.directory)
        assert stop.returncode == 0 and "was not running" in stop.stdout
        stale = pidfile.AgentPid(procs.ProcHandle(bystander.pid, WALRUS[:1] + ["-m", "walrus_ha", "node",
                                 "--config", config], handle.start_ticks), "node1", os.path.realpath(config), "")
        with open(pidfile.path_for(data_dir), "w") as f:
            json.dump(stale.to_json(), f)          # claims a walrus node, /proc disagrees
        assert c.current("node1") is None
        assert walrus("cluster", "down", "--dir", c.directory).returncode == 0
        assert bystander.poll() is None            # never signalled
    finally:
        bystander.kill()
        bystander.wait(timeout=10)
