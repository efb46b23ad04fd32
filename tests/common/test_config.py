"""Config loading: every bad input names the file and the key."""
import pytest

from walrus_ha.common.errors import ConfigError
from walrus_ha.node.config import NodeConfig, load_node_config
from walrus_ha.orchestrator.config import load_orchestrator_config

GOOD = "name: n1\ndata_dir: /tmp/n1\nttl: 3\nloop_wait: 0.2\nretry_timeout: 1\nsafety_margin: 0.5\n"


def write(tmp_path, text, name="node.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_node_config(tmp_path):
    cfg = load_node_config(write(tmp_path, GOOD))
    assert isinstance(cfg, NodeConfig)
    assert cfg.ttl == 3.0 and cfg.embedded.synchronous_commit == "on"


@pytest.mark.parametrize("extra,key,words", [
    ("bogus: 1\n", "bogus", "unknown key"),
    ("embedded:\n  segmnt_size: 1\n", "embedded.segmnt_size", "unknown key"),
    ("tags:\n  priority: high\n", "tags.priority", "must be an integer"),
    ("tags:\n  nofailover: 1\n", "tags.nofailover", "true or false"),
    ("embedded:\n  segment_size: 10\n", "embedded.segment_size", ">="),
    ("embedded:\n  commit_delay_s: 0.5\n", "embedded.commit_delay_s", "<="),
    ("embedded:\n  commit_siblings: 0\n", "embedded.commit_siblings", ">="),
    ("engine: mysql\n", "engine", "one of"),
    ("etcd:\n  endpoints: [nohost]\n", "etcd.endpoints[0]", "host:port"),
    ("agent_listen: localhost\n", "agent_listen", "host:port"),
])
def test_bad_node_config_names_key_and_file(tmp_path, extra, key, words):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as err:
        load_node_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and words in msg


def test_contradiction_loop_wait_retry_ttl(tmp_path):
    path = write(tmp_path, "name: n1\ndata_dir: /x\nttl: 2\nloop_wait: 1\nretry_timeout: 1\n")
    with pytest.raises(ConfigError, match=r"'ttl'.*must not exceed ttl"):
        load_node_config(path)


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'data_dir'"):
        load_node_config(write(tmp_path, "name: n1\n"))


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"node.yaml: line \d+ is not valid YAML"):
        load_node_config(write(tmp_path, "name: [unclosed\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_node_config(tmp_path / "absent.yaml")


def test_orchestrator_config(tmp_path):
    cfg = load_orchestrator_config(write(tmp_path, "id: o1\nsynchronous_mode: true\n", "orch.yaml"))
    assert cfg.synchronous_mode
    with pytest.raises(ConfigError, match="synchronous_method"):
        load_orchestrator_config(write(tmp_path, "id: o1\nsynchronous_method: most\n", "o2.yaml"))


def test_primary_write_failure_timeout(tmp_path):
    assert load_orchestrator_config(write(tmp_path, "id: o1\n", "o.yaml")).primary_write_failure_timeout == 10.0
    cfg = load_orchestrator_config(write(tmp_path, "id: o1\nprimary_write_failure_timeout: 0\n", "o0.yaml"))
    assert cfg.primary_write_failure_timeout == 0
    for bad in ("-1", "5000", "soon"):
        with pytest.raises(ConfigError,
                           match=r"o3\.yaml.*primary_write_failure_timeout|primary_write_failure_timeout.*o3\.yaml"):
            load_orchestrator_config(write(tmp_path, f"id: o1\nprimary_write_failure_timeout: {bad}\n", "o3.yaml"))


def test_deploy_configs_load():
    """The shipped compose configs must stay valid as the schema evolves."""
    import pathlib
    deploy = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "compose"
    nodes = sorted(deploy.glob("node*.yaml"))
    orchs = sorted(deploy.glob("orch*.yaml"))
    assert len(nodes) == 3 and len(orchs) == 2
    for p in nodes:
        assert load_node_config(p).engine == "embedded"
    for p in orchs:
        assert load_orchestrator_config(p).cluster == "demo"
