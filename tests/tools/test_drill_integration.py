"""A short real drill: ``walrus drill kill-primary --rounds 2 --sync`` on a
fresh 3-node embedded cluster; its JSON has the documented keys and no
acknowledged write is lost."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from walrus_ha.common import procs
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_dir(tmp_path):
    d = tmp_path / "drill"
    yield d
    if (d / "cluster.json").exists():
        LocalCluster.load(str(d)).stop_all(timeout_s=5.0)


def test_kill_primary_drill_sync(cluster_dir, tmp_path):
    out = tmp_path / "drill.json"
    result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "kill-primary", "--rounds", "2", "--sync",
                             "--dir", str(cluster_dir), "--json", str(out), "--html", str(tmp_path / "d.html")],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc) >= {"rounds", "summary", "config", "passed", "problems"}
    assert doc["passed"] is True and doc["summary"]["split_brain_total"] == 0
    assert "all 6 processes stopped" in doc["summary"]["cleanup"]
    assert len(doc["rounds"]) == 2
    for r in doc["rounds"]:     # the timeline: both lanes wrote, the kill is marked
        assert r["split_brain"] == 0 and sum(sum(v) for v in r["timeline"]["acks"].values()) == r["acked_writes"]
        assert any(label.startswith("SIGKILL") for _, label in r["timeline"]["events"])
    assert "<svg" in (tmp_path / "d.html").read_text()
    for r in doc["rounds"]:
        assert {"round", "rto_s", "lost_acked_writes", "rejoin_s", "old_primary", "new_primary",
                "acked_writes"} <= set(r)
        assert r["error"] == ""
        assert r["new_primary"] != r["old_primary"]
        assert r["acked_writes"] > 0 and r["rto_s"] > 0 and r["rejoin_s"] > 0
    s = doc["summary"]
    assert s["lost_acked_writes_total"] == 0
    assert {"rto_median_s", "rto_max_s", "rto_p90_s", "rejoin_median_s"} <= set(s)
    assert doc["config"]["sync"] is True
    # The drill stops the cluster it started.
    info = json.loads((cluster_dir / "cluster.json").read_text())
    assert not any(procs.is_ours(procs.ProcHandle.from_json(p["handle"])) for p in info["processes"].values())


def test_freeze_primary_drill_no_split_brain(cluster_dir, tmp_path):
    """SIGSTOP the primary for longer than ttl: a new primary takes over, the
    thawed old one acknowledges nothing alongside it, nothing acked is lost."""
    out = tmp_path / "freeze.json"
    result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "freeze-primary", "--rounds", "1", "--sync",
                             "--dir", str(cluster_dir), "--json", str(out)],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads(out.read_text())
    (r,) = doc["rounds"]
    assert r["error"] == "" and r["new_primary"] != r["old_primary"]
    assert r["frozen_s"] > doc["config"]["ttl"]
    assert doc["summary"]["dual_primary_acks_total"] == 0
    assert doc["summary"]["lost_acked_writes_total"] == 0


@pytest.mark.postgres
def test_kill_primary_drill_postgres_sync(tmp_path):
    """One round on real PostgreSQL 15 nodes (run as the postgres user)."""
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres.binaries import find_binaries
    try:
        find_binaries()
    except EngineError as exc:
        pytest.skip(str(exc))
    # Not under tmp_path: pytest keeps /tmp/pytest-of-root at 0700 (and concurrent sessions
    # reset it), so the postgres user could not reach the data dirs.
    base = tempfile.mkdtemp(prefix="walrus-pgdrill-", dir="/tmp")
    os.chmod(base, 0o711)
    d = pathlib.Path(base) / "pgdrill"
    out = tmp_path / "pg.json"
    try:
        result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "kill-primary", "--rounds", "1",
                                 "--sync", "--engine", "postgres", "--dir", str(d), "--json", str(out)],
                                capture_output=True, text=True, timeout=280)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        doc = json.loads(out.read_text())
        assert doc["config"]["engine"] == "postgres"
        assert doc["rounds"][0]["error"] == "" and doc["rounds"][0]["acked_writes"] > 0
        assert doc["summary"]["lost_acked_writes_total"] == 0
    finally:
        if (d / "cluster.json").exists():
            LocalCluster.load(str(d)).stop_all(timeout_s=5.0)
        shutil.rmtree(base, ignore_errors=True)


def test_campaign_writes_one_verdict_per_fault_and_a_page(cluster_dir, tmp_path):
    """Four faults, one round each, on one cluster: kill-primary, kill-standby
    and corrupt-wal (the damage detected by CRC) run, kill-engine says "not
    applicable" on the embedded engine; the JSON has the documented
    keys, the HTML renders again from it, and the cluster is stopped."""
    out, page = tmp_path / "c.json", tmp_path / "c.html"
    result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "campaign", "--rounds", "1", "--sync",
                             "--faults", "kill-primary,kill-engine,kill-standby,corrupt-wal", "--dir", str(cluster_dir),
                             "--json", str(out), "--html", str(page)],
                            capture_output=True, text=True, timeout=280)
    # exit 1 only when a verdict failed (e.g. an RTO target on a loaded host): judge the contents
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    assert "campaign [" in result.stdout and "3/3 rounds" in result.stdout
    doc = json.loads(out.read_text())
    by = {f["fault"]: f for f in doc["faults"]}
    assert list(by) == ["kill-primary", "kill-engine", "kill-standby", "corrupt-wal"]
    cw = json.loads(out.read_text())["drills"]["corrupt-wal"]["rounds"][0]
    assert by["corrupt-wal"]["passed"] is True and "fails its CRC" in cw["extra"]["detected"]
    ks = by["kill-standby"]        # safety only: writes resumed, nothing lost
    assert ks["passed"] is True and ks["rounds"] == 1 and ks["rto_median_s"] is not None
    kp = by["kill-primary"]
    assert {"fault", "rounds", "rto_median_s", "lost_acked_writes", "split_brain_events", "passed"} <= set(kp)
    assert kp["rounds"] == 1 and kp["lost_acked_writes"] == 0 and kp["split_brain_events"] == 0
    assert kp["passed"] == (kp["rto_median_s"] < 1.0) and (result.returncode == 0) == kp["passed"]
    assert by["kill-engine"]["applicable"] is False and by["kill-engine"]["passed"] is None
    s = doc["summary"]
    assert s["lost_acked_writes_total"] == 0 and s["split_brain_total"] == 0 and s["rounds_total"] == 3
    # 3 etcd members (the campaign's default), 3 nodes, 2 orchestrators
    assert "all 8 processes stopped" in s["cleanup"]
    assert "kill-primary" in page.read_text() and "<svg" in page.read_text()
    again = tmp_path / "again.html"
    rerun = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "report", str(out), "--html", str(again)],
                           capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and again.read_text() == page.read_text()
    info = json.loads((cluster_dir / "cluster.json").read_text())
    assert not any(procs.is_ours(procs.ProcHandle.from_json(p["handle"])) for p in info["processes"].values())


def test_report_refuses_a_file_that_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "report", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "not a walrus drill or campaign report" in result.stderr


def test_partition_primary_drill_heals_and_leaves_nothing_behind(cluster_dir, tmp_path):
    """The primary cut from etcd and the standbys (iptables + cgroup v2) for
    longer than ttl: a new primary takes over, the old one (still written to
    by a client) acknowledges nothing alongside it and rejoins after the heal;
    no rule or cgroup of the drill is left."""
    from walrus_ha.tools.drill import partition
    why = partition.problem()
    if why:
        pytest.skip(f"partition drill cannot run here: {why}")
    root = partition.cgroup2_root()

    def leftovers(mark: str) -> set[str]:   # ours only: other drills on this host may run or have crashed
        rules = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True).stdout
        return ({line for line in rules.splitlines() if mark in line}
                | {d for d in os.listdir(root) if d.startswith(mark)})
    out = tmp_path / "part.json"
    proc = subprocess.Popen([sys.executable, "-m", "walrus_ha", "drill", "partition-primary", "--rounds", "1",
                             "--sync", "--dir", str(cluster_dir), "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=280)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    r = json.loads(out.read_text())["rounds"][0]
    assert r["error"] == "" and r["new_primary"] != r["old_primary"]
    assert r["dual_primary_acks"] == 0 and r["split_brain"] == 0 and r["lost_acked_writes"] == 0
    assert r["extra"]["partitioned_s"] > json.loads(out.read_text())["config"]["ttl"]
    # the drill names its rules and cgroups walrus-drill-<its pid>-...
    assert leftovers(f"{partition.COMMENT_PREFIX}-{proc.pid}-") == set()


def test_etcd_member_loss_runs_on_three_members_and_says_why_not_on_one(cluster_dir, tmp_path):
    """The drill starts a 3-member etcd for etcd-member-loss by itself; writes
    go on while one member is down; on one member it says it does not apply."""
    out = tmp_path / "loss.json"
    result = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "etcd-member-loss", "--rounds", "1",
                             "--sync", "--dir", str(cluster_dir), "--json", str(out)],
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    r = json.loads(out.read_text())["rounds"][0]
    assert r["error"] == "" and r["lost_acked_writes"] == 0 and r["extra"]["etcd_member"] == "etcd1"
    assert r["rto_s"] < r["extra"]["window_s"]        # writes did not stop for the whole window
    info = json.loads((cluster_dir / "cluster.json").read_text())
    assert [n for n, p in info["processes"].items() if p["kind"] == "etcd"] == ["etcd1", "etcd2", "etcd3"]
    one = subprocess.run([sys.executable, "-m", "walrus_ha", "drill", "etcd-member-loss", "--etcd-members", "1"],
                         capture_output=True, text=True, timeout=60)
    assert one.returncode == 0 and "it needs 3" in one.stdout


def test_an_interrupted_campaign_cleans_up_keeps_its_rounds_and_fails(tmp_path):
    """Ctrl-C in the middle of a campaign: the rounds that finished are in
    the report, the summary says interrupted (never passed), the exit code
    is 130, and the cluster the drill started is stopped and removed."""
    out = tmp_path / "campaign.json"
    work = tmp_path / "tmp"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "walrus_ha", "drill", "campaign", "--rounds", "3",
                             "--etcd-members", "1", "--faults", "kill-primary,switchover", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(work)})
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "kill-primary round 1: ok" in line:
                proc.send_signal(signal.SIGINT)
                break
        lines.extend(proc.stdout)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert rc == 130, text[-3000:]
    doc = json.loads(out.read_text())
    assert doc["summary"]["interrupted"] is True and doc["summary"]["passed"] is False
    assert [f["fault"] for f in doc["faults"]] == ["kill-primary"] and doc["faults"][0]["rounds"] >= 1
    assert "campaign INTERRUPTED" in text and "processes stopped" in text, text[-3000:]
    assert list(work.iterdir()) == [], "the drill's cluster directory was left behind"
