"""deploy/compose/: the compose file builds every image it runs, keeps etcd's
and the members' data in named volumes (no anonymous volume is left behind),
publishes HAProxy's read-write/read-only ports on loopback only, and its
node configs open the HTTP API to HAProxy; ``docker-compose config`` accepts
it (when Debian's docker-compose is installed). The marker ``containers``
runs the real container test (tools/compose_failover.py): it is skipped,
saying why, where no container runtime, compose CLI or base image is."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

from walrus_ha.node.config import load_node_config
from walrus_ha.orchestrator.config import load_orchestrator_config
from walrus_ha.tools import compose_failover

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
HOOKS = DEPLOY / "drill-hooks" / "compose.yaml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_image_is_built_here():
    for name, svc in services().items():
        images_built = {s["image"] for s in services().values() if "build" in s}
        assert "build" in svc or svc["image"] in images_built, name


def test_volumes_are_named_or_bind_mounts_only():
    declared = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    used = set()
    for name, svc in services().items():
        for v in svc.get("volumes", []):
            source, _, target = v.partition(":")
            assert target, f"{name}: {v} is an anonymous volume"
            if not source.startswith("."):
                used.add(source)
    assert used == declared and {"etcd", "n1", "n2", "n3"} <= declared


def test_haproxy_publishes_rw_and_ro_on_loopback_only():
    ports = services()["haproxy"]["ports"]
    assert {p.rsplit(":", 1)[1] for p in ports} >= {"5000", "5001"}
    for svc in services().values():
        for p in svc.get("ports", []):
            assert p.startswith("127.0.0.1:"), p


@pytest.mark.parametrize("n", ["1", "2", "3"])
def test_node_configs_open_the_http_api_and_match_haproxy(n):
    cfg = load_node_config(str(DEPLOY / "compose" / f"node{n}.yaml"))
    assert cfg.api_listen == "0.0.0.0:8008" and cfg.name == f"n{n}"
    assert f"server {cfg.name} {cfg.name}:7100 check port 8008" in (DEPLOY / "haproxy" / "haproxy.cfg").read_text()


@pytest.mark.parametrize("n", ["1", "2"])
def test_orchestrator_configs_load(n):
    assert load_orchestrator_config(str(DEPLOY / "compose" / f"orch{n}.yaml")).id == f"o{n}"


def test_drill_hooks_name_the_compose_services():
    hooks = yaml.safe_load(HOOKS.read_text())
    assert hooks["vars"]["files"] == "-f deploy/compose/compose.yaml -f deploy/compose/compose.drill.yaml"
    for name in ("kill-node", "start-node", "kill-orchestrator", "kill-etcd", "start-etcd"):
        assert "{project}{sep}{" in hooks["hooks"][name], name
    assert "{compose} -p {project} {files}" in hooks["hooks"]["wipe-etcd"]
    assert "etcd" in services()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file():
    out = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    broken = COMPOSE.read_text().replace("volumes: {etcd: {}, n1: {}, n2: {}, n3: {}}", "volumes: {n1: {}}")
    bad = COMPOSE.parent / ".broken-compose.yaml"
    try:
        bad.write_text(broken)
        out = subprocess.run(["docker-compose", "-f", str(bad), "config", "-q"], capture_output=True, text=True)
    finally:
        bad.unlink()
    assert out.returncode != 0 and "etcd" in out.stderr


@pytest.mark.containers
@pytest.mark.parametrize("engine", ["embedded", "postgres"])
def test_docker_kill_of_the_primary_container_keeps_writes_going_through_haproxy(engine):
    why = compose_failover.preflight()
    if why:
        pytest.skip(f"real container test: {why}")
    out = compose_failover.run(rounds=1, project=f"walrus-pytest-{engine}", engine=engine)
    (r,) = out["rounds"]
    print(f"\ndocker kill {r['killed']} -> first write through HAProxy at term {r['new_term']} "
          f"on {r['new_leader']} after {r['kill_to_write_s']:.2f}s")
    assert r["new_leader"] != r["killed"] and r["new_term"] > r["old_term"]


DRILL = DEPLOY / "compose" / "compose.drill.yaml"
POSTGRES = DEPLOY / "compose" / "compose.postgres.yaml"


def _expand(text: str, **env: str) -> str:
    """compose's ${VAR:-default} substitution, defaults only (or ``env``)."""
    import re
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), text)


def test_drill_override_advertises_the_fixed_address_of_each_member():
    drill = yaml.safe_load(_expand(DRILL.read_text(), WALRUS_DRILL_NET="10.9.8"))
    svc = drill["services"]
    assert drill["networks"]["default"]["ipam"]["config"] == [{"subnet": "10.9.8.0/24"}]
    for name in ("n1", "n2", "n3"):
        ip = svc[name]["networks"]["default"]["ipv4_address"]
        assert svc[name]["environment"]["WALRUS_NODE__ADVERTISE_HOST"] == ip and ip.startswith("10.9.8.")
        assert svc[name]["environment"]["WALRUS_NODE__ETCD__ENDPOINTS"] == "etcd:2379,etcd2:2379,etcd3:2379"
    for name in ("o1", "o2"):
        ip = svc[name]["networks"]["default"]["ipv4_address"]
        assert svc[name]["environment"]["WALRUS_ORCHESTRATOR__ADVERTISE"] == f"{ip}:7400"
    members = {m: svc[m]["networks"]["default"]["ipv4_address"] for m in ("etcd", "etcd2", "etcd3")}
    for m, ip in members.items():
        cmd = svc[m]["command"].split()
        assert cmd[cmd.index("--name") + 1] == m
        assert cmd[cmd.index("--advertise-client-urls") + 1] == f"http://{ip}:2379"
        assert cmd[cmd.index("--initial-cluster") + 1] == ",".join(f"{k}=http://{v}:2380" for k, v in members.items())
    assert set(drill["volumes"]) | set(yaml.safe_load(COMPOSE.read_text())["volumes"]) >= set(members)


def test_drill_node_env_loads_as_a_node_config():
    env = yaml.safe_load(_expand(DRILL.read_text()))["services"]["n2"]["environment"]
    cfg = load_node_config(str(DEPLOY / "compose" / "node2.yaml"), env=env)
    assert cfg.data_address == "172.29.7.12:7100" and cfg.etcd.endpoints[-1] == "etcd3:2379"


def _render(action: str, **values: str) -> str:
    from walrus_ha.tools.drill import hooks
    from walrus_ha.tools.drill.target import Action
    return hooks.load(str(HOOKS), {"project": "p"}).render(Action(action), values)


def test_drill_hooks_act_on_the_project_containers():
    node = {"node": "n2", "address": "x", "agent_address": "y"}
    assert _render("kill-node", **node) == "docker kill -s KILL p_n2_1"
    assert _render("freeze-node", **node) == "docker pause p_n2_1"
    assert "{{.State.Pid}}" in _render("freeze-agent", **node)
    cut = _render("isolate-node", **node, etcd_endpoints="10.0.0.2:2379 10.0.0.3:2379", peers="n1 n3")
    assert cut.startswith("DOCKER=docker deploy/drill-hooks/compose-net.sh cut p_n2_1 10.0.0.2:2379 10.0.0.3:2379")
    assert "for p in n1 n3; do echo p_${p}_1; done" in cut
    assert _render("heal-node", **node, etcd_endpoints="", peers="") == \
        "DOCKER=docker deploy/drill-hooks/compose-net.sh heal p_n2_1"
    wipe = _render("wipe-etcd", etcd_members="etcd etcd2", etcd_endpoints="")
    assert "rm -s -f etcd etcd2" in wipe and "volume rm p_$m" in wipe and "-f deploy/compose/compose.drill.yaml" in wipe


def test_postgres_override_uses_password_files_and_port_5432():
    pg = yaml.safe_load(POSTGRES.read_text())
    assert set(pg["secrets"]) == {"superuser_password", "replication_password"}
    for name in ("n1", "n2", "n3"):
        svc = pg["services"][name]
        assert svc["build"] == {"target": "postgres"} and svc["image"] == "walrus:postgres"
        cfg = load_node_config(str(DEPLOY / "compose" / f"node{name[1]}.yaml"), env=svc["environment"])
        assert cfg.engine == "postgres" and cfg.data_address == f"{name}:5432"
        assert cfg.postgres.superuser_password_file == "/run/secrets/superuser_password"
        assert cfg.postgres.replication_password_file == "/run/secrets/replication_password"
        assert set(svc["secrets"]) == set(pg["secrets"])
    cfg_text = (DEPLOY / "haproxy" / "haproxy.postgres.cfg").read_text()
    for n in ("n1", "n2", "n3"):
        assert cfg_text.count(f"server {n} {n}:5432 check port 8008") == 2
    assert pg["services"]["haproxy"]["volumes"] == ["../haproxy/haproxy.postgres.cfg:/etc/haproxy/haproxy.cfg:ro"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("override", ["compose.drill.yaml", "compose.postgres.yaml"])
def test_docker_compose_accepts_the_overrides(override):
    out = subprocess.run(["docker-compose", "-f", str(COMPOSE), "-f", str(COMPOSE.parent / override), "config", "-q"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_compose_failover_secrets_are_private(tmp_path):
    directory, password = compose_failover.make_secrets()
    try:
        assert os.stat(directory).st_mode & 0o777 == 0o700
        with open(os.path.join(directory, "superuser_password")) as f:
            assert f.read() == password + "\n"
        assert sorted(os.listdir(directory)) == ["replication_password", "superuser_password"]
    finally:
        shutil.rmtree(directory)
