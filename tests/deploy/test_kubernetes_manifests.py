"""deploy/kubernetes/: every manifest passes the Kubernetes schemas
(``kubernetes-validate``, strict: no unknown fields), runs non-root with a
read-only root filesystem, the config in its ConfigMaps loads as walrus
loads it (with the pod's environment overrides), and the HAProxy config in
it passes ``haproxy -c``."""
from __future__ import annotations

import pathlib
import shutil

import kubernetes_validate
import pytest
import yaml

from walrus_ha.node.config import load_node_config
from walrus_ha.orchestrator.config import load_orchestrator_config

K8S = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.30.0"      # the oldest Kubernetes release the manifests target


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for _, d in documents() if d["kind"] == kind]


def test_there_are_manifests():
    kinds = {d["kind"] for _, d in documents()}
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"])
def test_manifest_passes_the_kubernetes_schema(name, doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_a_wrong_field_is_refused():
    _, doc = next((n, d) for n, d in documents() if d["kind"] == "StatefulSet")
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def pod_specs() -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"])
            for d in by_kind("StatefulSet") + by_kind("Deployment")]


@pytest.mark.parametrize("name,spec", pod_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_run_non_root_read_only_with_requests(name, spec):
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["readinessProbe"] and c["livenessProbe"]


def test_agents_probe_the_http_api_and_keep_data_in_claims():
    (sts,) = [d for d in by_kind("StatefulSet") if d["metadata"]["name"] == "walrus"]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readiness"
    assert c["livenessProbe"]["httpGet"]["path"] == "/liveness"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    (svc,) = [d for d in by_kind("Service") if d["metadata"]["name"] == sts["spec"]["serviceName"]]
    assert svc["spec"]["clusterIP"] == "None"
    assert {p["metadata"]["name"] for p in by_kind("PodDisruptionBudget")} >= {"walrus", "walrus-etcd"}
    services = {d["metadata"]["name"] for d in by_kind("Service")}
    assert {"walrus-rw", "walrus-ro"} <= services


def _configmap(name: str) -> dict:
    (cm,) = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == name]
    return cm["data"]


def test_configmap_loads_with_the_pod_environment(tmp_path):
    data = _configmap("walrus-config")
    (tmp_path / "node.yaml").write_text(data["node.yaml"])
    (tmp_path / "orch.yaml").write_text(data["orch.yaml"])
    # What the pod templates set (Kubernetes expands $(VAR) before the agent sees it).
    node = load_node_config(str(tmp_path / "node.yaml"), env={
        "WALRUS_NODE__NAME": "walrus-1", "WALRUS_NODE__DATA_DIR": "/var/lib/walrus/walrus-1",
        "WALRUS_NODE__ADVERTISE_HOST": "walrus-1.walrus-nodes"})
    assert (node.name, node.api_listen) == ("walrus-1", "0.0.0.0:8008")
    orch = load_orchestrator_config(str(tmp_path / "orch.yaml"), env={
        "WALRUS_ORCHESTRATOR__ID": "walrus-orchestrator-abc", "WALRUS_ORCHESTRATOR__ADVERTISE": "10.0.0.5:7400"})
    assert orch.advertise == "10.0.0.5:7400"
    assert node.cluster == orch.cluster


@pytest.mark.skipif(shutil.which("haproxy") is None and not pathlib.Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy is not installed (apt-get install haproxy)")
def test_haproxy_configmap_is_valid(tmp_path):
    from walrus_ha.tools.localcluster import haproxy
    path = tmp_path / "haproxy.cfg"
    path.write_text(_configmap("walrus-haproxy")["haproxy.cfg"])
    haproxy.check_config(str(path))
