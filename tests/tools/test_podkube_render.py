"""tools/podkube/render.py: deploy/kubernetes/ becomes the pods a cluster
would run, with the same container specs, and only the documented changes
for podman 4.3 (downward API and $(VAR) filled in, ports dropped, probes as
one-string exec commands, emptyDirs per pod, claims per replica, headless
Service names as aliases)."""
from __future__ import annotations

import pathlib
import shlex
import subprocess

import pytest
import yaml

from walrus_ha.tools.podkube import render

K8S = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
IPS = [f"10.89.9.{i}" for i in range(10, 60)]


def docs() -> list[dict]:
    out: list[dict] = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@pytest.fixture(scope="module")
def rendered() -> render.Rendered:
    return render.render(docs(), IPS)


def pod(rendered: render.Rendered, name: str) -> render.PodPlan:
    (p,) = [p for p in rendered.pods if p.name == name]
    return p


def test_every_replica_becomes_a_pod_and_only_pods_reading_their_ip_get_a_fixed_one(rendered):
    names = [p.name for p in rendered.pods]
    assert names == ["walrus-0", "walrus-1", "walrus-2", "walrus-etcd-0", "walrus-etcd-1", "walrus-etcd-2",
                     "walrus-haproxy-0", "walrus-haproxy-1", "walrus-orchestrator-0", "walrus-orchestrator-1"]
    assert {p.name: p.ip for p in rendered.pods if p.ip} == {"walrus-orchestrator-0": IPS[0],
                                                              "walrus-orchestrator-1": IPS[1]}
    assert [p.doc["kind"] for p in rendered.pods] == ["Pod"] * len(names)
    assert {d.split("/")[0] for d in rendered.dropped} == {"PodDisruptionBudget"}


def test_statefulset_pods_keep_the_container_spec_and_get_claims(rendered):
    (sts,) = [d for d in docs() if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "walrus"]
    want = sts["spec"]["template"]["spec"]["containers"][0]
    p = pod(rendered, "walrus-1")
    (c,) = p.doc["spec"]["containers"]
    for key in ("image", "args", "resources", "securityContext"):
        assert c[key] == want[key], key
    assert p.doc["spec"]["securityContext"] == sts["spec"]["template"]["spec"]["securityContext"]
    assert [m["mountPath"] for m in c["volumeMounts"]] == [m["mountPath"] for m in want["volumeMounts"]]
    assert p.claims == ("data-walrus-1",)
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-walrus-1"}} in p.doc["spec"]["volumes"]
    assert [c["metadata"]["name"] for c in rendered.claims][:3] == ["data-walrus-0", "data-walrus-1", "data-walrus-2"]
    assert (p.doc["spec"]["hostname"], p.doc["spec"]["subdomain"]) == ("walrus-1", "walrus-nodes")
    assert p.doc["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "walrus-1"


def test_headless_service_names_resolve_to_the_pods(rendered):
    assert pod(rendered, "walrus-2").aliases == ("walrus-2.walrus-nodes", "walrus-nodes")
    assert pod(rendered, "walrus-etcd-0").aliases == ("walrus-etcd-0.walrus-etcd", "walrus-etcd")
    assert set(pod(rendered, "walrus-haproxy-0").aliases) == {"walrus-rw", "walrus-ro"}
    assert pod(rendered, "walrus-orchestrator-1").aliases == ("walrus-orchestrator",)


def test_downward_api_and_var_references_are_filled_in(rendered):
    env = {e["name"]: e["value"] for e in pod(rendered, "walrus-2").doc["spec"]["containers"][0]["env"]}
    assert env == {"WALRUS_NODE__NAME": "walrus-2", "WALRUS_NODE__DATA_DIR": "/var/lib/walrus/walrus-2",
                   "WALRUS_NODE__ADVERTISE_HOST": "walrus-2.walrus-nodes"}
    o = pod(rendered, "walrus-orchestrator-0")
    env = {e["name"]: e["value"] for e in o.doc["spec"]["containers"][0]["env"]}
    assert env["WALRUS_ORCHESTRATOR__ADVERTISE"] == f"{o.ip}:7400"
    assert env["WALRUS_ORCHESTRATOR__ID"] == "walrus-orchestrator-0"
    etcd = pod(rendered, "walrus-etcd-1").doc["spec"]["containers"][0]
    assert "--advertise-client-urls=http://walrus-etcd-1.walrus-etcd:2379" in etcd["args"]
    assert not any("$(" in a for a in etcd["args"])


@pytest.mark.parametrize("text,env,want", [
    ("$(A).x", {"A": "a"}, "a.x"),
    ("$(B)", {"A": "a"}, "$(B)"),            # unknown: left as written, as the kubelet does
    ("$$(A)", {"A": "a"}, "$(A)"),           # escaped
    ("$(A)$(A)", {"A": "a"}, "aa"),
], ids=["known", "unknown", "escaped", "twice"])
def test_var_expansion(text, env, want):
    assert render.expand(text, env) == want


def test_unsupported_field_ref_is_refused():
    c = {"name": "c", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    with pytest.raises(ValueError, match="spec.nodeName"):
        render.resolve_env(c, "p", "ns", "10.0.0.1")


def test_ports_are_dropped_and_probes_become_one_shell_string(rendered):
    p = pod(rendered, "walrus-0")
    (c,) = p.doc["spec"]["containers"]
    assert "ports" not in c and p.ports["api"] == 8008 and p.ports["data"] == 7100
    (cmd,) = c["readinessProbe"]["exec"]["command"]
    assert "/dev/tcp/127.0.0.1/8008" in cmd and "GET /readiness " in cmd
    assert c["readinessProbe"]["periodSeconds"] == 2
    assert p.readiness == {"agent": f"timeout 1 sh -c {shlex.quote(cmd)}"}
    assert "GET /liveness " in c["livenessProbe"]["exec"]["command"][0]
    assert p.liveness == {"agent": f"timeout 1 sh -c {shlex.quote(c['livenessProbe']['exec']['command'][0])}"}
    assert c["livenessProbe"]["initialDelaySeconds"] == 10


@pytest.mark.parametrize("status,ok", [(200, True), (301, True), (503, False)], ids=["200", "301", "503"])
def test_http_probe_command_judges_the_status_as_the_kubelet_does(tmp_path, status, ok):
    """The rendered httpGet command against a one-shot server answering ``status``."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.handle_request, daemon=True).start()
    cmd = render.probe_command({"httpGet": {"path": "/primary", "port": "api"}}, {"api": srv.server_port})
    try:
        assert (subprocess.run(["sh", "-c", cmd], timeout=10).returncode == 0) is ok
    finally:
        srv.server_close()


def test_a_probe_on_an_unknown_named_port_is_refused():
    with pytest.raises(ValueError, match="names no containerPort"):
        render.probe_command({"tcpSocket": {"port": "nope"}}, {"api": 8008})


def test_empty_dirs_are_per_pod(rendered):
    for name in ("walrus-0", "walrus-orchestrator-1"):
        spec = pod(rendered, name).doc["spec"]
        empties = [v["name"] for v in spec["volumes"] if "emptyDir" in v]
        assert empties == [f"{name}-tmp"]
        mounts = {m["name"] for m in spec["containers"][0]["volumeMounts"]}
        assert f"{name}-tmp" in mounts and "tmp" not in mounts


def test_an_unknown_kind_is_refused():
    extra = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {}}
    with pytest.raises(ValueError, match="Job/j"):
        render.render(docs() + [extra], IPS)
