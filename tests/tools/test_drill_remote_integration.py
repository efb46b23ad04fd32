"""Remote drills for real: a cluster started on its own (``walrus cluster up``
in a subprocess), drilled through ``--orchestrators/--etcd/--hooks
deploy/drill-hooks/local.yaml`` as a separate process that starts nothing,
then stopped by ``walrus cluster down`` (by verified PID)."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOCAL_HOOKS = str(ROOT / "deploy" / "drill-hooks" / "local.yaml")


def _walrus(*args, timeout=280):
    return subprocess.run([sys.executable, "-m", "walrus_ha", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """(dir, the drill's target options) of a 3-node sync cluster."""
    d = tmp_path_factory.mktemp("remote") / "c"
    up = _walrus("cluster", "up", "--dir", str(d), "--sync", "--timeout", "120", timeout=240)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        info = json.loads((d / "cluster.json").read_text())
        names = [n for n, p in info["processes"].items() if p["kind"] == "orchestrator"]
        orchs = ",".join(f"{n}={a}" for n, a in zip(names, info["orchestrators"]))
        yield d, ["--orchestrators", orchs, "--etcd", ",".join(info["etcd_endpoints"]), "--hook-var", f"dir={d}"]
    finally:
        down = _walrus("cluster", "down", "--dir", str(d), timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


def _drill(remote, tmp_path, fault, hooks=LOCAL_HOOKS, name="d.json"):
    d, options = remote
    out = tmp_path / name
    result = _walrus("drill", fault, "--rounds", "1", "--sync", *options, "--hooks", hooks, "--json", str(out))
    return result, (json.loads(out.read_text()) if out.exists() else None)


def _all_running(d, wait_s: float = 90.0) -> bool:
    """Every process runs and the cluster is healthy (polled: a restarted
    member may still be catching up when the drill returns)."""
    deadline = time.monotonic() + wait_s
    while True:
        status = json.loads(_walrus("cluster", "status", "--dir", str(d), "--json", timeout=60).stdout)
        if all(p["running"] for p in status["processes"].values()) and status["healthy"]:
            return True
        if time.monotonic() >= deadline:
            print(status)
            return False
        time.sleep(1.0)


def test_remote_kill_primary_fails_over_and_loses_nothing(remote, tmp_path):
    result, doc = _drill(remote, tmp_path, "kill-primary")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert doc["config"]["target"] == "remote" and doc["config"]["hooks"] == LOCAL_HOOKS
    (r,) = doc["rounds"]
    assert r["error"] == "" and r["new_primary"] and r["new_primary"] != r["old_primary"]
    assert r["acked_writes"] > 0 and r["lost_acked_writes"] == 0 and r["split_brain"] == 0
    assert doc["passed"] is True
    assert "hook kill-node:" in result.stdout and "hook start-node:" in result.stdout
    assert doc["summary"]["cleanup"].startswith("remote cluster left running")
    assert _all_running(remote[0])         # the old primary was restarted by its hook


def test_remote_freeze_primary_thaws_through_its_undo_hook(remote, tmp_path):
    result, doc = _drill(remote, tmp_path, "freeze-primary")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (r,) = doc["rounds"]
    assert r["error"] == "" and r["new_primary"] != r["old_primary"]
    assert r["frozen_s"] > doc["config"]["ttl"]
    assert r["dual_primary_acks"] == 0 and r["lost_acked_writes"] == 0
    assert "hook thaw-agent:" in result.stdout
    assert _all_running(remote[0])


def test_a_failing_fault_hook_fails_the_round_and_its_undo_still_runs(remote, tmp_path):
    """kill-node kills, then exits 3: the round fails naming the command and
    exit code, and the start-node undo brings the node back."""
    text = pathlib.Path(LOCAL_HOOKS).read_text().replace(
        '--signal KILL"\n  start-node', '--signal KILL && echo gone >&2 && exit 3"\n  start-node', 1)
    assert "exit 3" in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    result, doc = _drill(remote, tmp_path, "kill-primary", hooks=str(broken))
    assert result.returncode == 1
    (r,) = doc["rounds"]
    assert "hook kill-node failed" in r["error"] and "exited 3" in r["error"] and "gone" in r["error"]
    assert "recover: start-node" in result.stdout, result.stdout[-3000:]
    assert _all_running(remote[0]), result.stdout[-3000:]


def test_faults_without_hooks_say_not_applicable(remote, tmp_path):
    result, doc = _drill(remote, tmp_path, "partition-primary")
    assert result.returncode == 0 and doc is None
    assert "partition-primary: not applicable on this target: needs hooks isolate-node, heal-node" in result.stdout
