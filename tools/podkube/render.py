"""Render deploy/kubernetes/ into what ``podman kube play`` (4.3) runs.

Pure: documents in, documents out; no podman, no files. The rule is to keep
every container spec as written (image, args, env, volume mounts, security
context, resources, probe paths) and to change only what podman 4.3 cannot
take, each change named here and in docs/internals.md ("Kubernetes under
podman"):

* StatefulSets and Deployments become their Pods (``<sts>-<i>``,
  ``<deployment>-<i>``) with the template's labels (plus the StatefulSet's
  ``statefulset.kubernetes.io/pod-name``) and, for a StatefulSet, the
  pod's ``hostname``/``subdomain``; each volumeClaimTemplate becomes a
  PersistentVolumeClaim ``<claim>-<sts>-<i>`` (a podman volume that stays
  when the pod is deleted, as a PVC does).
* Headless Services become DNS names: each selected pod gets the network
  aliases ``<pod>.<service>`` and ``<service>``; other Services (a virtual
  IP with port mapping) do not exist: their name is an alias of each
  selected pod, reached on the target port.
* The downward API (``metadata.name``, ``metadata.namespace``,
  ``status.podIP``: podman 4.3 refuses the last) is filled in with the
  values the pod will have (a pod that reads its IP is given a fixed one;
  the others get a new one from podman whenever they are recreated), and
  ``$(VAR)`` references in env, command and args are expanded as the
  kubelet does.
* ``ports`` are dropped after named probe ports are resolved: podman 4.3
  publishes every containerPort on the host's 0.0.0.0, so two replicas
  collide. Pod IPs are routable from the host.
* Probes become ``exec`` commands of one shell string (podman joins an exec
  probe's words unquoted into its CMD-SHELL healthcheck) that do the same
  HTTP GET or TCP connect with bash's /dev/tcp: the images have no curl.
  Podman runs a liveness probe only from systemd timers; ``readiness`` and
  ``liveness`` here hold the commands, which the player runs itself.
* emptyDir volumes are renamed ``<pod>-<volume>``: podman 4.3 makes an
  emptyDir a named volume called after the volume, shared by every pod.
* PodDisruptionBudgets are dropped (no eviction API).
"""
from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTROLLERS = ("StatefulSet", "Deployment")
DROPPED = ("PodDisruptionBudget",)
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class PodPlan:
    """One pod to play: its Pod document, IP, DNS aliases and the
    readiness and liveness commands of each container (container name ->
    shell string, bounded by the probe's timeoutSeconds)."""
    name: str
    owner: str                  # "StatefulSet/walrus", "Deployment/walrus-orchestrator"
    ip: str
    aliases: tuple[str, ...]
    doc: dict
    claims: tuple[str, ...] = ()
    readiness: Mapping[str, str] = field(default_factory=dict)
    liveness: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """The whole deployment for podman: ConfigMaps (played with
    ``--configmap``), PersistentVolumeClaims, pods, and what was dropped."""
    configmaps: list[dict]
    claims: list[dict]
    pods: list[PodPlan]
    dropped: list[str]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: a known VAR is replaced, an unknown
    one is left as written, ``$$`` is a literal ``$``."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(one, text)


def _field_ref(path: str, pod: str, namespace: str, ip: str) -> str:
    values = {"metadata.name": pod, "metadata.namespace": namespace, "status.podIP": ip}
    if path not in values:
        raise ValueError(f"fieldRef {path} is not supported by the podman renderer")
    return values[path]


def resolve_env(container: dict, pod: str, namespace: str, ip: str) -> dict[str, str]:
    """Rewrite ``container``'s env in place to literal values (downward API
    filled in, ``$(VAR)`` expanded in order) and expand its command/args."""
    env: dict[str, str] = {}
    out = []
    for var in container.get("env", []):
        if "valueFrom" in var:
            ref = var["valueFrom"].get("fieldRef")
            if ref is None:
                raise ValueError(f"env {var['name']}: only fieldRef is supported by the podman renderer")
            value = _field_ref(ref["fieldPath"], pod, namespace, ip)
        else:
            value = expand(str(var.get("value", "")), env)
        env[var["name"]] = value
        out.append({"name": var["name"], "value": value})
    if out:
        container["env"] = out
    for key in ("command", "args"):
        if key in container:
            container[key] = [expand(str(a), env) for a in container[key]]
    return env


def _port(value: int | str, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if value not in ports:
        raise ValueError(f"probe port {value!r} names no containerPort")
    return ports[value]


def probe_command(probe: Mapping, ports: Mapping[str, int]) -> str:
    """The shell string that does what ``probe`` does: exit 0 when an HTTP
    GET answers 200-399 (httpGet), when the port accepts (tcpSocket), or
    the exec command's own exit."""
    if "exec" in probe:
        return " ".join(shlex.quote(w) for w in probe["exec"]["command"])
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = _port(get["port"], ports)
        request = f"GET {get.get('path', '/')} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n"
        script = (f'exec 3<>/dev/tcp/127.0.0.1/{port} && printf "{request}" >&3 && '
                  'head -n 1 <&3 | grep -Eq "^HTTP/[0-9.]+ [23][0-9][0-9]"')
        return f"bash -c {shlex.quote(script)}"
    if "tcpSocket" in probe:
        port = _port(probe["tcpSocket"]["port"], ports)
        return f"bash -c {shlex.quote(f'exec 3<>/dev/tcp/127.0.0.1/{port}')}"
    raise ValueError(f"unsupported probe {sorted(probe)}")


def _container(c: dict) -> tuple[dict[str, int], dict[str, str]]:
    """Drop ports and rewrite probes of container ``c`` in place; its named
    ports and probe key -> command as the kubelet runs it (within
    timeoutSeconds, default 1)."""
    ports = {p["name"]: int(p["containerPort"]) for p in c.get("ports", []) if "name" in p}
    ports.update({str(p["containerPort"]): int(p["containerPort"]) for p in c.get("ports", [])})
    c.pop("ports", None)
    timed = {}
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if key in c:
            probe = c[key]
            command = probe_command(probe, ports)
            kept = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket", "exec", "grpc")}
            c[key] = {"exec": {"command": [command]}, **kept}
            timed[key] = f"timeout {int(probe.get('timeoutSeconds', 1))} sh -c {shlex.quote(command)}"
    return ports, timed


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pods_of(doc: dict) -> list[tuple[str, dict, list[str]]]:
    """(pod name, Pod document, claim names) for each replica of a controller."""
    kind, name, spec = doc["kind"], doc["metadata"]["name"], doc["spec"]
    tpl = spec["template"]
    out = []
    for i in range(int(spec.get("replicas", 1))):
        pod = f"{name}-{i}"
        labels = dict(tpl["metadata"].get("labels", {}))
        pspec = copy.deepcopy(tpl["spec"])
        claims = []
        if kind == "StatefulSet":
            labels["statefulset.kubernetes.io/pod-name"] = pod
            pspec["hostname"], pspec["subdomain"] = pod, spec["serviceName"]
            for claim in spec.get("volumeClaimTemplates", []):
                cname = f"{claim['metadata']['name']}-{pod}"
                claims.append(cname)
                pspec.setdefault("volumes", []).append(
                    {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": cname}})
        else:
            pspec.setdefault("hostname", pod)
        out.append((pod, {"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": pod, "labels": labels}, "spec": pspec}, claims))
    return out


def _claim_docs(doc: dict) -> dict[str, dict]:
    return {t["metadata"]["name"]: t for t in doc["spec"].get("volumeClaimTemplates", [])}


def _rename_empty_dirs(pod: str, spec: dict) -> None:
    renamed = {}
    for v in spec.get("volumes", []):
        if "emptyDir" in v:
            renamed[v["name"]] = v["name"] = f"{pod}-{v['name']}"
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for m in c.get("volumeMounts", []):
            m["name"] = renamed.get(m["name"], m["name"])


def _aliases(pod: str, labels: Mapping[str, str], subdomain: str | None, services: list[dict]) -> tuple[str, ...]:
    out = []
    for svc in services:
        sname = svc["metadata"]["name"]
        if not _selects(svc["spec"].get("selector", {}), labels):
            continue
        if svc["spec"].get("clusterIP") == "None" and subdomain == sname:
            out.append(f"{pod}.{sname}")
        out.append(sname)
    return tuple(out)


def needs_ip(spec: Mapping) -> bool:
    """Whether a pod spec reads its own IP (``status.podIP``): such a pod
    is given a fixed address; every other pod gets one from podman, a new
    one each time it is recreated, as in a cluster."""
    return any(v.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP"
               for c in spec.get("containers", []) for v in c.get("env", []))


def render(docs: Iterable[dict], ips: Iterable[str], namespace: str = "walrus") -> Rendered:
    """Render the Kubernetes ``docs`` for podman, giving the pods that read
    their own IP (``needs_ip``) the addresses ``ips`` in order (StatefulSets
    then Deployments, each in document order; the others get ``ip`` "").
    ValueError on what the renderer cannot express."""
    docs = [d for d in docs if d]
    services = [d for d in docs if d["kind"] == "Service"]
    ip_iter = iter(ips)
    pods, claims = [], []
    controllers = [d for k in CONTROLLERS for d in docs if d["kind"] == k]
    for ctl in controllers:
        templates = _claim_docs(ctl)
        for name, pod, claim_names in _pods_of(ctl):
            spec = pod["spec"]
            ip = next(ip_iter) if needs_ip(spec) else ""
            _rename_empty_dirs(name, spec)
            readiness, liveness, ports = {}, {}, {}
            for c in spec["containers"]:
                resolve_env(c, name, namespace, ip)
                named, timed = _container(c)
                ports.update(named)
                if "readinessProbe" in timed:
                    readiness[c["name"]] = timed["readinessProbe"]
                if "livenessProbe" in timed:
                    liveness[c["name"]] = timed["livenessProbe"]
            for cname in claim_names:
                tpl = templates[cname[: -len(name) - 1]]
                claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                               "metadata": {"name": cname, "labels": pod["metadata"]["labels"]},
                               "spec": copy.deepcopy(tpl["spec"])})
            aliases = _aliases(name, pod["metadata"]["labels"], spec.get("subdomain"), services)
            pods.append(PodPlan(name, f"{ctl['kind']}/{ctl['metadata']['name']}", ip, aliases, pod,
                                tuple(claim_names), readiness, liveness, ports))
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    known = set(CONTROLLERS) | {"Service", "ConfigMap"}
    dropped = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if d["kind"] not in known]
    unknown = [x for x in dropped if x.split("/")[0] not in DROPPED]
    if unknown:
        raise ValueError(f"the podman renderer does not know {', '.join(unknown)}")
    return Rendered(configmaps, claims, pods, dropped)
