"""The cluster-wide config on a real local cluster (etcd, 3 embedded agents,
2 orchestrators as processes): seeded from the files, ``ctl config set``
reaches the running members (their member records name the revision they
run, the orchestrator publishes a synchronous set), a bad value is refused
naming the key with nothing written, concurrent edits lose nothing
(compare-and-swap on the revision), ``ctl reload`` re-reads a node's file.

``walrus ctl`` runs in this process (``cli.main``) except where a separate
process is the point (no tty, two editors at once); the checks read etcd."""
import json
import os
import subprocess
import sys
import threading

import pytest
import yaml

from support_wait import wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.tools import cli, ctl_config
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

WALRUS = [sys.executable, "-m", "walrus_ha"]


def walrus(*args, env=None, timeout=60):
    return subprocess.run(WALRUS + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("config") / "cluster"
    try:
        up = walrus("cluster", "up", "--nodes", "3", "--dir", str(d), "--json", "--timeout", "90", timeout=120)
        assert up.returncode == 0, up.stderr + up.stdout
        info = json.loads(up.stdout)
        with Dcs(info["etcd_endpoints"], "walrus") as dcs:
            yield str(d), dcs
    finally:
        if (d / "cluster.json").exists():
            LocalCluster.load(str(d)).stop_all(timeout_s=5.0)


@pytest.fixture
def ctl(cluster, capsys):
    """``walrus ctl ARGS --dir DIR`` in this process: (exit code, stdout)."""
    d, _ = cluster

    def run(*args):
        capsys.readouterr()
        code = cli.main(["ctl", *args, "--dir", d])
        return code, capsys.readouterr().out
    return run


def document(dcs):
    doc, rev = dcs.get(dcs.keys.config)
    return doc, rev


def test_seeded_then_a_change_reaches_running_members(cluster, ctl):
    d, dcs = cluster
    code, out = ctl("config", "show", "--json")
    first = json.loads(out)
    cfg = first["config"]
    # seeded from the files: the agents' timings, the orchestrators' under orchestrator.*
    assert code == 0 and (cfg["ttl"], cfg["loop_wait"], cfg["synchronous_mode"]) == (3.0, 0.2, False)
    assert cfg["orchestrator"]["loop_wait"] == 0.1

    # a separate process without a tty: the diff is shown, no question asked
    out = walrus("ctl", "config", "set", "loop_wait=0.25", "synchronous_mode=on", "--dir", d)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "~ loop_wait: 0.2 -> 0.25" in out.stdout and "~ synchronous_mode: false -> true" in out.stdout
    _, rev = document(dcs)
    assert rev > first["revision"]

    def applied():
        view = dcs.read_view()
        on_rev = {m.name for m in view.members if m.config_revision == rev}
        return view if on_rev == {"node1", "node2", "node3"} and view.sync and view.sync.names else None
    view = wait_for(applied, 30, 0.1, "every agent on the new revision and a synchronous set published")
    assert len(view.sync.names) == 1 and view.sync.leader == view.leader.name

    code, _ = ctl("config", "set", "synchronous_mode=off", "loop_wait=0.2", "--force")
    assert code == 0
    wait_for(lambda: not (dcs.read_view().sync and dcs.read_view().sync.names), 30, 0.1, "sync set withdrawn")


@pytest.mark.parametrize("item,key", [("loop_wait=soon", "'loop_wait' must be a number"),
                                      ("ttl=0.5", "'ttl' must be >= 1.0"),
                                      ("retry_timeout=2", "'ttl': loop_wait + 2*retry_timeout"),
                                      ("postgres.parameters.port=5433", "'postgres.parameters.port'"),
                                      ("nosuch=1", "unknown key 'nosuch'")])
def test_a_bad_value_is_refused_naming_the_key_and_nothing_is_written(cluster, ctl, item, key):
    _, dcs = cluster
    before = document(dcs)
    code, out = ctl("config", "set", item, "--json", "--force")
    assert code == 1 and key in json.loads(out)["error"]
    assert document(dcs) == before


def test_concurrent_edits_lose_nothing(cluster, ctl):
    d, dcs = cluster
    set_ours = lambda doc: {**doc, "primary_write_failure_timeout": 12}      # noqa: E731

    # Another editor writes between our read and our write: with one attempt
    # we refuse and its change stands; with two we re-apply on top of it.
    def rival(changes):
        assert ctl("config", "set", "reseed_wait=11", "--force")[0] == 0
        return True
    with pytest.raises(ctl_config.ConcurrentEdit):
        ctl_config.edit(dcs, set_ours, rival, attempts=1)
    doc, _ = document(dcs)
    assert (doc["reseed_wait"], doc["primary_write_failure_timeout"]) == (11.0, 10.0)

    calls = []

    def rival_once(changes):
        calls.append(changes)
        if len(calls) == 1:
            assert ctl("config", "set", "reseed_wait=13", "--force")[0] == 0
        return True
    w = ctl_config.edit(dcs, set_ours, rival_once, attempts=2)
    doc, _ = document(dcs)
    assert w.written and len(calls) == 2
    assert (doc["reseed_wait"], doc["primary_write_failure_timeout"]) == (13.0, 12.0)

    # Two ctl processes at once, different keys: both changes land.
    results = {}

    def run(item):
        results[item] = walrus("ctl", "config", "set", item, "--dir", d)
    threads = [threading.Thread(target=run, args=(i,)) for i in ("reseed_wait=10", "primary_write_failure_timeout=10")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results.values()), {k: r.stderr for k, r in results.items()}
    doc, _ = document(dcs)
    assert (doc["reseed_wait"], doc["primary_write_failure_timeout"]) == (10.0, 10.0)


def test_edit_config_apply_and_reload(cluster, ctl, tmp_path, monkeypatch):
    d, dcs = cluster
    doc, _ = document(dcs)
    f = tmp_path / "cfg.yaml"
    f.write_text(yaml.safe_dump({**doc, "reseed_wait": 9}))
    code, out = ctl("edit-config", "--apply", str(f), "--force")
    assert code == 0 and "~ reseed_wait: 10 -> 9" in out and document(dcs)[0]["reseed_wait"] == 9.0
    # an editor that changes one line: validated, diffed, written
    monkeypatch.setenv("EDITOR", "sed -i s/^reseed_wait:.*/reseed_wait:\\ 8/")
    code, out = ctl("edit-config", "--force")
    assert code == 0 and "~ reseed_wait: 9 -> 8" in out and document(dcs)[0]["reseed_wait"] == 8.0
    # an editor that leaves the document as it was: no change, nothing written
    _, rev = document(dcs)
    monkeypatch.setenv("EDITOR", "true")
    code, out = ctl("edit-config", "--force")
    assert code == 0 and "no change" in out and document(dcs)[1] == rev
    # an editor that writes a bad value: refused naming the key, nothing written
    monkeypatch.setenv("EDITOR", "sed -i s/^ttl:.*/ttl:\\ soon/")
    code, out = ctl("edit-config", "--force", "--json")
    assert code == 1 and "'ttl' must be a number" in json.loads(out)["error"] and document(dcs)[1] == rev

    # reload: node2 re-reads its file; a tag applies live, a listen address waits for a restart
    path = os.path.join(d, "conf", "node2.yaml")
    text = open(path).read()
    cfg = yaml.safe_load(text)
    cfg["tags"] = {"priority": 7}
    cfg["agent_listen"] = "127.0.0.1:1"
    try:
        with open(path, "w") as fh:
            yaml.safe_dump(cfg, fh)
        code, out = ctl("reload", "node2", "--json")
        r = json.loads(out)["members"]["node2"]
        assert code == 0 and r["changed"] and "tags.priority" in r["applied"]
        assert r["pending_restart"] == ["agent:agent_listen"]
        rec = wait_for(lambda: next((m for m in dcs.read_view().members
                                     if m.name == "node2" and m.pending_restart), None), 20, 0.1, "pending restart")
        assert rec.tags["priority"] == 7 and rec.pending_restart == ("agent:agent_listen",)
    finally:
        with open(path, "w") as fh:
            fh.write(text)
        ctl("reload", "node2")
