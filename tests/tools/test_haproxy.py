"""HAProxy in front of a cluster: the rendered config and the shipped
``deploy/haproxy/haproxy.cfg`` pass ``haproxy -c``; and (integration) a client
writing through HAProxy's read-write port reaches the new primary after the
primary's agent is SIGKILLed (the time is printed, not asserted)."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from walrus_ha.tools.localcluster import haproxy

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None and not pathlib.Path("/usr/sbin/haproxy").exists(),
                                   reason="haproxy is not installed (apt-get install haproxy)")
DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
BACKENDS = [haproxy.Backend("node1", "127.0.0.1:7100", "127.0.0.1:8008"),
            haproxy.Backend("node2", "127.0.0.1:7101", "127.0.0.1:8009")]


def test_render_checks_primary_for_rw_and_replica_for_ro():
    text = haproxy.render(BACKENDS, 5000, 5001)
    rw, ro = text.split("listen walrus_rw")[1].split("listen walrus_ro")
    assert "bind 127.0.0.1:5000" in rw and "uri /primary" in rw
    assert "bind 127.0.0.1:5001" in ro and "uri /replica" in ro
    for part in (rw, ro):
        assert "server node1 127.0.0.1:7100 check addr 127.0.0.1 port 8008" in part
        assert "server node2 127.0.0.1:7101 check addr 127.0.0.1 port 8009" in part


@needs_haproxy
def test_rendered_config_is_valid(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy.render(BACKENDS, 5000, 5001))
    haproxy.check_config(str(path))


@needs_haproxy
def test_deploy_config_is_valid(tmp_path):
    # The shipped file names compose hosts (n1..n3); check it with loopback names.
    text = DEPLOY.read_text()
    for n in ("n1", "n2", "n3"):
        text = text.replace(f" {n}:7100", " 127.0.0.1:7100")
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    haproxy.check_config(str(path))


@needs_haproxy
def test_refused_config_is_an_error(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("listen x\n    bind 127.0.0.1:1\n    server s nowhere:\n    frobnicate\n")
    with pytest.raises(haproxy.HaproxyError, match="refused"):
        haproxy.check_config(str(path))


@needs_haproxy
@pytest.mark.integration
def test_writes_through_haproxy_reach_the_new_primary_after_a_kill(tmp_path):
    from walrus_ha.tools import bench_http
    from walrus_ha.tools.localcluster.cluster import LocalCluster
    from walrus_ha.tools.localcluster.render import ClusterSpec

    cluster = LocalCluster.create(ClusterSpec(directory=str(tmp_path / "c"), nodes=3))
    proxy = writer = None
    try:
        cluster.start_all()
        cluster.wait_healthy(120.0)
        proxy, rw, _ = bench_http.start_haproxy(cluster)
        writer = bench_http.Writer(f"127.0.0.1:{rw}").start()
        r = bench_http.kill_round(cluster, writer)
        print(f"\nSIGKILL {r['killed']} -> first write through HAProxy at term {r['new_term']} "
              f"on {r['new_leader']} after {r['kill_to_write_s']:.2f}s")
        assert r["new_leader"] != r["killed"] and r["new_term"] > r["old_term"]
        # Acknowledgements came from the old term and the new one only.
        after = [term for t, term in writer.acks if t > writer.acks[0][0] and term != r["old_term"]]
        assert after and set(after) == {r["new_term"]}
    finally:
        for part in (writer, proxy):
            if part is not None:
                part.stop()
        cluster.stop_all(timeout_s=10.0)
