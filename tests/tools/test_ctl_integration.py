"""``walrus ctl`` against a real local cluster (etcd, 3 embedded agents, 2
orchestrators as processes): found from etcd alone, topology, dsn, version,
typed tags, JSON errors, a closed pipe; the agents and orchestrators started
with ``WALRUS_*__LOG__FORMAT=json`` in their environment log JSON lines."""
import json
import os
import re
import subprocess
import sys

import pytest

import walrus_ha
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

WALRUS = [sys.executable, "-m", "walrus_ha"]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


def walrus(*args, env=None, timeout=120):
    return subprocess.run(WALRUS + list(args), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctl") / "cluster"
    env = {**os.environ, "WALRUS_NODE__LOG__FORMAT": "json", "WALRUS_ORCHESTRATOR__LOG__FORMAT": "json",
           "WALRUS_NODE__TAGS__PRIORITY": "3"}
    env.pop("WALRUS_ORCHESTRATORS", None)
    try:
        up = walrus("cluster", "up", "--nodes", "3", "--dir", str(d), "--json", "--timeout", "90", env=env)
        assert up.returncode == 0, up.stderr + up.stdout
        yield d, json.loads(up.stdout)
    finally:
        if (d / "cluster.json").exists():
            LocalCluster.load(str(d)).stop_all(timeout_s=5.0)


def test_ctl_from_etcd_alone(cluster):
    d, info = cluster
    etcd = ",".join(info["etcd_endpoints"])
    listed = walrus("ctl", "list", "--json", "--etcd", etcd)
    assert listed.returncode == 0, listed.stderr + listed.stdout
    members = json.loads(listed.stdout)["members"]
    assert sorted(m["name"] for m in members) == ["node1", "node2", "node3"]
    # typed tags, and the environment override reached every agent
    assert all(m["tags"] == {"nofailover": False, "priority": 3} for m in members), members
    wrong = walrus("ctl", "list", "--json", "--etcd", etcd, "--cluster", "nosuch")
    assert wrong.returncode == 1 and "no orchestrator registered" in json.loads(wrong.stdout)["error"]


def test_topology_dsn_version(cluster):
    d, info = cluster
    leader = info["leader"]
    topo = json.loads(walrus("ctl", "topology", "--json", "--dir", str(d)).stdout)["topology"]
    assert topo[0]["name"] == leader and topo[0]["role"] == "primary"
    assert sorted(s["name"] for s in topo[0]["standbys"]) == sorted({"node1", "node2", "node3"} - {leader})
    assert all(s["sync"] == "async" and s["streaming"] for s in topo[0]["standbys"])
    text = walrus("ctl", "topology", "--dir", str(d)).stdout.splitlines()
    assert text[0].startswith(f"{leader}  primary") and len(text) == 3
    dsn = json.loads(walrus("ctl", "dsn", "--json", "--dir", str(d)).stdout)
    assert dsn == {"role": "primary", "engine": "embedded", "members": [leader],
                   "addresses": [info["members"][leader]["data_address"]], "dsn": None}
    assert "no libpq" in walrus("ctl", "dsn", "--dir", str(d)).stdout
    replicas = json.loads(walrus("ctl", "dsn", "--role", "replica", "--json", "--dir", str(d)).stdout)
    assert len(replicas["members"]) == 2 and leader not in replicas["members"]
    version = walrus("ctl", "version", "--json", "--etcd", ",".join(info["etcd_endpoints"]))
    assert version.returncode == 0, version.stderr + version.stdout
    v = walrus_ha.__version__
    assert json.loads(version.stdout) == {"version": v, "members": {n: v for n in ("node1", "node2", "node3")},
                                          "orchestrators": {"orch1": v, "orch2": v}}


def test_errors_and_closed_pipe(cluster):
    d, _ = cluster
    bad = walrus("ctl", "switchover", "--to", "nobody", "--json", "--no-wait", "--dir", str(d))
    assert bad.returncode == 1
    err = json.loads(bad.stdout)
    assert set(err) >= {"error", "code"} and err["code"] == "INVALID_ARGUMENT", err
    for args in (["list"], ["history"], ["topology"], ["list", "--json"]):
        r, w = os.pipe()
        os.close(r)                  # the reader is gone before ctl writes (`| head -0`): EPIPE for sure
        try:
            piped = subprocess.run(WALRUS + ["ctl", *args, "--dir", str(d)], stdout=w, stderr=subprocess.PIPE,
                                   text=True, timeout=60)
        finally:
            os.close(w)
        assert piped.returncode == 141 and "Traceback" not in piped.stderr, (args, piped.stderr)


def test_processes_log_json_lines_with_iso_timestamps(cluster):
    d, _ = cluster
    for name in ("node1", "orch1"):
        lines = [ln for ln in (d / "logs" / f"{name}.log").read_text().splitlines() if ln.startswith("{")]
        assert lines, name
        records = [json.loads(ln) for ln in lines]
        assert all(ISO.fullmatch(r["ts"]) and r["component"] == name and r["msg"] for r in records)
        assert any(r.get("fields") for r in records), name
