"""Run deploy/kubernetes/ under ``podman kube play`` on this machine: the
rendered pods (``render.py``) on their own podman network, one ``kube
play`` per pod so each gets its IP and DNS aliases, and what a kubelet and
the controllers would do, done by hand: readiness probes run with ``podman
exec``, a deleted pod is recreated under its name with its claims.

State (rendered files, pod IPs) lives in a state directory; every command
after ``up`` reads it, and ``down`` removes pods, volumes (claims,
ConfigMap and emptyDir volumes), the network and the directory.

``PODKUBE_HOST_MNT`` (set by ``run``): the commands run inside ``run``'s
private mount namespace (the pods' DNS as /etc/resolv.conf) send podman to
the host's mount namespace with nsenter, so the containers podman starts
do not live in a namespace that ends with the command.
"""
from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict

import yaml

from walrus_ha.tools.podkube import render

IMAGES = {"walrus:embedded": ("Dockerfile", ["--target", "embedded"]),
          "walrus-etcd:local": ("deploy/image/etcd.Dockerfile", []),
          "walrus-haproxy:local": ("deploy/image/haproxy.Dockerfile", [])}
BASE_IMAGE = "walrus-base:bookworm"
HOST_MNT = "PODKUBE_HOST_MNT"
AARDVARK = pathlib.Path("/run/containers/networks/aardvark-dns")


class PodmanError(RuntimeError):
    """A podman command failed; the message names the command and its stderr."""


def source_root() -> pathlib.Path:
    """The checkout holding deploy/kubernetes (the wheel has no deploy/)."""
    here = pathlib.Path(__file__).resolve().parents[2]
    for root in (here, pathlib.Path.cwd()):
        if (root / "deploy" / "kubernetes").is_dir():
            return root
    raise FileNotFoundError("deploy/kubernetes not found: run from a source checkout")


def containers_conf(state: pathlib.Path) -> pathlib.Path:
    """A containers.conf whose default ulimits are this host's hard limits:
    podman's defaults (nofile 1048576, nproc 4194304) fail with EPERM where
    the host allows less (this machine: nofile 20000, pids 32768)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(pathlib.Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    path = state / "containers.conf"
    path.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n')
    return path


def podman(args: Sequence[str], state: pathlib.Path | None = None, check: bool = True,
           timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run ``podman args`` (in the host's mount namespace, see the module
    docstring); PodmanError when it fails and ``check``."""
    cmd = ["podman", *args]
    if os.environ.get(HOST_MNT):
        cmd = ["nsenter", f"--mount={os.environ[HOST_MNT]}", "--", *cmd]
    env = dict(os.environ)
    if state is not None and (state / "containers.conf").exists():
        env["CONTAINERS_CONF"] = str(state / "containers.conf")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                         stdin=subprocess.DEVNULL)
    if check and out.returncode != 0:
        raise PodmanError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-1500:]}")
    return out


def preflight(build: bool = False) -> str | None:
    """None when the podman test can run here, else why not."""
    try:
        if podman(["info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False).returncode != 0:
            return "podman info fails (is podman set up?)"
    except FileNotFoundError:
        return "podman is not installed (apt-get install podman catatonit)"
    if podman(["pod", "exists", "walrus-0"], check=False).returncode == 0:
        return "a pod walrus-0 already runs here (podkube down --state DIR first)"
    images = [BASE_IMAGE] if build else list(IMAGES)
    for image in images:
        if podman(["image", "exists", image], check=False).returncode != 0:
            how = "deploy/image/make-base.sh podman" if image == BASE_IMAGE else "podkube build"
            return f"no podman image {image} (make it with {how})"
    return None


def build(root: pathlib.Path) -> None:
    """podman build the three images from the local base (network host so
    apt and pip reach their mirrors as the host does)."""
    for tag, (dockerfile, extra) in IMAGES.items():
        podman(["build", "--network", "host", "-f", str(root / dockerfile), *extra, "-t", tag, str(root)],
               timeout_s=1800.0)


def manifests(root: pathlib.Path) -> list[dict]:
    docs: list[dict] = []
    for path in sorted((root / "deploy" / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _write(path: pathlib.Path, docs: list[dict]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def load(state: pathlib.Path) -> dict:
    return json.loads((state / "state.json").read_text())


def _network(state: pathlib.Path, network: str) -> tuple[ipaddress.IPv4Network, str]:
    """Create ``network`` on a free subnet whose lower half is podman's to
    hand out; the upper half holds the fixed pod IPs. (subnet, gateway)."""
    podman(["network", "create", network], state)
    info = json.loads(podman(["network", "inspect", network], state).stdout)[0]
    subnet = ipaddress.IPv4Network(info["subnets"][0]["subnet"])
    podman(["network", "rm", network], state)
    lower = next(subnet.subnets(new_prefix=subnet.prefixlen + 1))
    podman(["network", "create", "--subnet", str(subnet), "--ip-range", str(lower), network], state)
    info = json.loads(podman(["network", "inspect", network], state).stdout)[0]
    return subnet, info["subnets"][0]["gateway"]


def pod_ip(state: pathlib.Path, name: str) -> str:
    """Pod ``name``'s IP now ("" when it has none: stopped, isolated)."""
    out = podman(["inspect", _infra(state, name), "--format", "{{json .NetworkSettings.Networks}}"], state)
    nets = json.loads(out.stdout) or {}
    return (nets.get(load(state)["network"]) or {}).get("IPAddress", "")


def up(state: pathlib.Path, network: str = "walrus-kube", root: pathlib.Path | None = None,
       env: dict[str, dict[str, str]] | None = None) -> dict:
    """Create the network, the claims, and play every pod; returns the state.
    ``env``: owner ("Deployment/walrus-orchestrator") -> variables added to
    its containers, as a user edits a pod template's env."""
    root = root or source_root()
    state.mkdir(parents=True, exist_ok=True)
    containers_conf(state)
    subnet, gateway = _network(state, network)
    fixed = list(subnet.subnets(new_prefix=subnet.prefixlen + 1))[1]
    out = render.render(manifests(root), [str(h) for h in list(fixed.hosts())[9:]])
    # One file per ConfigMap: podman 4.3 reads only the first document of a --configmap file.
    configmaps = [_write(state / f"configmap-{c['metadata']['name']}.yaml", [c]) for c in out.configmaps]
    pods: dict[str, dict] = {}
    st = {"network": network, "gateway": gateway, "configmaps": configmaps,
          "claims": [c["metadata"]["name"] for c in out.claims], "dropped": out.dropped, "pods": pods}
    for plan in out.pods:
        for c in plan.doc["spec"]["containers"]:
            c.setdefault("env", []).extend({"name": k, "value": v} for k, v in (env or {}).get(plan.owner, {}).items())
        pods[plan.name] = {**{k: v for k, v in asdict(plan).items() if k != "doc"},
                           "labels": plan.doc["metadata"]["labels"],
                           "file": _write(state / f"pod-{plan.name}.yaml", [plan.doc])}
    (state / "resolv.conf").write_text(f"search dns.podman\nnameserver {gateway}\n")
    (state / "state.json").write_text(json.dumps(st, indent=1))
    if out.claims:
        # --network: without it podman 4.3 creates its podman-default-kube-network.
        podman(["kube", "play", "--network", network, _write(state / "claims.yaml", out.claims)], state)
    for name in pods:
        play(state, name)
    return st


def play(state: pathlib.Path, name: str) -> None:
    """``kube play`` pod ``name`` with its IP and aliases (a pod deleted
    before is created again, as its controller would)."""
    st = load(state)
    pod = st["pods"][name]
    net = st["network"] + "".join(f"{',' if i else ':'}alias={a}" for i, a in enumerate(pod["aliases"]))
    configmaps = [a for f in st["configmaps"] for a in ("--configmap", f)]
    fixed = ["--ip", pod["ip"]] if pod["ip"] else []
    podman(["kube", "play", *configmaps, "--network", net, *fixed, pod["file"]], state)


def delete(state: pathlib.Path, name: str) -> None:
    """Delete pod ``name`` at once (``kubectl delete pod --grace-period=0 --force``)."""
    podman(["pod", "rm", "-f", "-t", "0", name], state, check=False)


def kill(state: pathlib.Path, name: str) -> None:
    """SIGKILL every container of pod ``name`` (the pod stays, stopped)."""
    podman(["pod", "kill", "--signal", "KILL", name], state)


def recreate(state: pathlib.Path, name: str) -> None:
    """The controller's part: delete what is left of pod ``name``, play it again."""
    delete(state, name)
    play(state, name)


def _infra(state: pathlib.Path, name: str) -> str:
    return podman(["pod", "inspect", name, "--format", "{{.InfraContainerID}}"], state).stdout.strip()


def isolate(state: pathlib.Path, name: str) -> None:
    """Cut pod ``name`` off the network (etcd, peers and clients alike, as
    a deny-all NetworkPolicy does)."""
    (state / f"isolated-{name}").write_text(pod_ip(state, name))
    podman(["network", "disconnect", load(state)["network"], _infra(state, name)], state)


def heal(state: pathlib.Path, name: str) -> None:
    """Connect pod ``name`` again with the IP it had and its aliases."""
    st = load(state)
    pod = st["pods"][name]
    saved = state / f"isolated-{name}"
    ip = saved.read_text() if saved.exists() else pod["ip"]
    aliases = [a for alias in pod["aliases"] for a in ("--alias", alias)]
    fixed = ["--ip", ip] if ip else []
    podman(["network", "connect", *fixed, *aliases, st["network"], _infra(state, name)], state)
    saved.unlink(missing_ok=True)


def wipe(state: pathlib.Path, names: Sequence[str]) -> None:
    """Delete pods ``names``, remove their claims and play them again
    empty (etcd-wipe: every member at once)."""
    st = load(state)
    for name in names:
        delete(state, name)
    for name in names:
        for claim in st["pods"][name]["claims"]:
            podman(["volume", "rm", "-f", claim], state)
            podman(["volume", "create", claim], state)
    for name in names:
        play(state, name)


def ready(state: pathlib.Path, name: str, probe: str = "readiness") -> bool:
    """Every ``probe`` ("readiness" or "liveness") of pod ``name`` passes
    now (run in its container)."""
    pod = load(state)["pods"][name]
    for container, command in pod[probe].items():
        try:
            out = podman(["exec", f"{name}-{container}", "sh", "-c", command], state, check=False, timeout_s=30.0)
        except subprocess.TimeoutExpired:
            return False
        if out.returncode != 0:
            return False
    return True


def wait_ready(state: pathlib.Path, names: Sequence[str], timeout_s: float = 180.0) -> None:
    """Poll the readiness probes of ``names`` until all pass; TimeoutError."""
    deadline = time.monotonic() + timeout_s
    pending = list(names)
    while pending:
        pending = [n for n in pending if not ready(state, n)]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"pods not Ready after {timeout_s:g}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.5)


def down(state: pathlib.Path) -> list[str]:
    """Remove every pod, volume and the network of ``state``; what was removed."""
    st = load(state)
    removed = []
    for name in st["pods"]:
        delete(state, name)
        removed.append(f"pod {name}")
    volumes = set(st["claims"])
    volumes |= {yaml.safe_load(pathlib.Path(f).read_text())["metadata"]["name"] for f in st["configmaps"]}
    for pod in st["pods"].values():
        doc = yaml.safe_load(pathlib.Path(pod["file"]).read_text())
        volumes |= {v["name"] for v in doc["spec"].get("volumes", []) if "emptyDir" in v}
    for v in sorted(volumes):
        if podman(["volume", "rm", "-f", v], state, check=False).returncode == 0:
            removed.append(f"volume {v}")
    if podman(["network", "rm", "-f", st["network"]], state, check=False).returncode == 0:
        removed.append(f"network {st['network']}")
    # A leaked container entry (a pod torn down from another mount namespace)
    # keeps aardvark-dns's file of the network, with the old gateway, across
    # network rm: a network created later under the name would get no DNS.
    stale = AARDVARK / st["network"]
    if stale.exists() and podman(["network", "exists", st["network"]], state, check=False).returncode != 0:
        stale.unlink()
        removed.append(f"stale aardvark-dns entries {stale}")
    for f in state.iterdir():
        f.unlink()
    state.rmdir()
    return removed


def run_with_pod_dns(state: pathlib.Path, argv: Sequence[str]) -> int:
    """Run ``argv`` in a private mount namespace whose /etc/resolv.conf asks
    the network's DNS (aardvark-dns at the gateway), so pod names such as
    walrus-0.walrus-nodes resolve as they do inside the pods; podman
    commands it runs go back to this namespace (``HOST_MNT``)."""
    resolv = state / "resolv.conf"
    env = dict(os.environ, **{HOST_MNT: f"/proc/{os.getpid()}/ns/mnt"})
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return subprocess.call(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            str(resolv), *argv], env=env)
