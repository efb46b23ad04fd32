"""PostgreSQL-style YAML values and WALRUS_* environment overrides."""
import pytest

from walrus_ha.common.config_env import overrides
from walrus_ha.common.errors import ConfigError
from walrus_ha.common.log import LogFormat
from walrus_ha.node.config import NodeConfig, load_node_config
from walrus_ha.orchestrator.config import load_orchestrator_config

GOOD = "name: n1\ndata_dir: /tmp/n1\nttl: 3\nloop_wait: 0.2\nretry_timeout: 1\nsafety_margin: 0.5\n"


def write(tmp_path, text, name="node.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("yaml_value,expected", [
    ("on", "on"), ("off", "off"), ("yes", "on"), ("true", "on"), ("false", "off"),
    ("remote_apply", "remote_apply"), ("'on'", "on"),
])
def test_synchronous_commit_takes_yaml_booleans(tmp_path, yaml_value, expected):
    cfg = load_node_config(write(tmp_path, GOOD + f"embedded:\n  synchronous_commit: {yaml_value}\n"))
    assert cfg.embedded.synchronous_commit == expected


def test_postgres_parameters_render_as_postgresql_literals(tmp_path):
    from walrus_ha.node.engine.postgres.conf import StaticConf, render_postgresql_conf
    text = (GOOD + "postgres:\n  max_slot_wal_keep_size: 1024\n  parameters:\n    max_connections: 200\n"
            "    wal_log_hints: on\n    checkpoint_completion_target: 0.9\n    hot_standby_feedback: false\n"
            "    work_mem: 4MB\n    log_min_duration_statement: -1\n")
    cfg = load_node_config(write(tmp_path, text))
    assert cfg.postgres.parameters == {"max_connections": "200", "wal_log_hints": "on",
                                       "checkpoint_completion_target": "0.9", "hot_standby_feedback": "off",
                                       "work_mem": "4MB", "log_min_duration_statement": "-1"}
    assert cfg.postgres.max_slot_wal_keep_size == "1024"
    conf = render_postgresql_conf(StaticConf("127.0.0.1", 5432, "/tmp", cfg.postgres.max_slot_wal_keep_size,
                                             dict(cfg.postgres.parameters))).splitlines()
    for line in ("max_connections = 200", "wal_log_hints = on", "checkpoint_completion_target = 0.9",
                 "hot_standby_feedback = off", "work_mem = 4MB", "log_min_duration_statement = -1"):
        assert line in conf


@pytest.mark.parametrize("extra,key,words", [
    ("postgres:\n  parameters:\n    shared_preload_libraries: [a, b]\n", "postgres.parameters.shared_preload_libraries",
     "PostgreSQL setting"),
    ("postgres:\n  parameters:\n    work_mem:\n", "postgres.parameters.work_mem", "got nothing"),
    ("postgres:\n  parameters:\n    work_mem: .nan\n", "postgres.parameters.work_mem", "finite"),
    ("embedded:\n  synchronous_commit: 2\n", "embedded.synchronous_commit", "one of"),
    ("embedded:\n  synchronous_commit: {a: 1}\n", "embedded.synchronous_commit", "got a mapping"),
    ("log:\n  format: xml\n", "log.format", "one of"),
])
def test_really_wrong_types_still_name_key_and_file(tmp_path, extra, key, words):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as err:
        load_node_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and words in msg


def test_log_format(tmp_path):
    assert load_node_config(write(tmp_path, GOOD)).log.format is LogFormat.TEXT
    assert load_node_config(write(tmp_path, GOOD + "log:\n  format: json\n")).log.format is LogFormat.JSON
    orch = load_orchestrator_config(write(tmp_path, "id: o1\nlog:\n  format: json\n", "o.yaml"))
    assert orch.log.format is LogFormat.JSON


def test_env_overrides_any_key(tmp_path):
    env = {"WALRUS_NODE__NAME": "n9", "WALRUS_NODE__TAGS__PRIORITY": "5", "WALRUS_NODE__TAGS__NOFAILOVER": "on",
           "WALRUS_NODE__POSTGRES__PARAMETERS__MAX_CONNECTIONS": "200",
           "WALRUS_NODE__ETCD__ENDPOINTS": "10.0.0.1:2379, 10.0.0.2:2379", "WALRUS_NODE__ETCD__TIMEOUT_S": "4",
           "WALRUS_NODE__EMBEDDED__SYNCHRONOUS_COMMIT": "off", "WALRUS_NODE__LOG__FORMAT": "json",
           "WALRUS_NODE__ADVERTISE_HOST": "", "WALRUS_ORCHESTRATOR__TTL": "99", "OTHER": "x"}
    path = write(tmp_path, GOOD + "advertise_host: h\npostgres:\n  parameters:\n    work_mem: 4MB\n"
                 "etcd:\n  timeout_s: 1\n")
    cfg = load_node_config(path, env=env)
    assert cfg.name == "n9" and cfg.tags.priority == 5 and cfg.tags.nofailover is True
    assert cfg.postgres.parameters == {"work_mem": "4MB", "max_connections": "200"}
    assert cfg.etcd.endpoints == ("10.0.0.1:2379", "10.0.0.2:2379") and cfg.etcd.timeout_s == 4.0
    assert cfg.embedded.synchronous_commit == "off" and cfg.log.format is LogFormat.JSON
    assert cfg.advertise_host == "" and cfg.ttl == 3.0          # the orchestrator's variable is not ours
    assert load_node_config(path).name == "n1"                  # without env: the file alone
    orch = load_orchestrator_config(write(tmp_path, "id: o1\n", "o.yaml"), env={"WALRUS_ORCHESTRATOR__TTL": "99",
                                                                               "WALRUS_NODE__NAME": "x"})
    assert orch.ttl == 99.0


def test_env_list_as_yaml_flow_sequence(tmp_path):
    cfg = load_node_config(write(tmp_path, GOOD), env={"WALRUS_NODE__POSTGRES__HBA": "['host all all 10.0.0.0/8 md5']"})
    assert cfg.postgres.hba == ("host all all 10.0.0.0/8 md5",)


@pytest.mark.parametrize("env,words", [
    ({"WALRUS_NODE__TAGS__PRIORTY": "1"}, ["WALRUS_NODE__TAGS__PRIORTY", "unknown key 'tags.priorty'", "priority"]),
    ({"WALRUS_NODE__BOGUS": "1"}, ["WALRUS_NODE__BOGUS", "unknown key 'bogus'"]),
    ({"WALRUS_NODE__TTL__X": "1"}, ["WALRUS_NODE__TTL__X", "'ttl' has no keys"]),
    ({"WALRUS_NODE__TAGS__PRIORITY": "high"}, ["WALRUS_NODE__TAGS__PRIORITY", "tags.priority", "integer"]),
    ({"WALRUS_NODE__TAGS__PRIORITY": "5000"}, ["WALRUS_NODE__TAGS__PRIORITY", "tags.priority", "<="]),
    ({"WALRUS_NODE__TTL": "[1"}, ["WALRUS_NODE__TTL", "not a YAML value"]),
    ({"WALRUS_NODE__ENGINE": "mysql"}, ["WALRUS_NODE__ENGINE", "one of"]),
    ({"WALRUS_NODE__TAGS____X": "1"}, ["WALRUS_NODE__TAGS____X", "empty key part"]),
    ({"WALRUS_NODE__TTL": "100", "WALRUS_NODE__SAFETY_MARGIN": "60"},          # a contradiction still checked
     ["WALRUS_NODE__SAFETY_MARGIN", "'safety_margin': must be below ttl/2"]),
])
def test_env_errors_name_the_variable(tmp_path, env, words):
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as err:
        load_node_config(path, env=env)
    for w in words:
        assert w in str(err.value)


def test_env_does_not_hide_a_bad_file_section(tmp_path):
    path = write(tmp_path, GOOD + "etcd: nope\n")
    with pytest.raises(ConfigError) as err:
        load_node_config(path, env={"WALRUS_NODE__ETCD__TIMEOUT_S": "3"})
    assert "etcd" in str(err.value) and "mapping" in str(err.value)


def test_overrides_are_sorted_and_typed():
    from walrus_ha.common.config import check_value
    found = overrides(NodeConfig, {"WALRUS_NODE__TTL": "5", "WALRUS_NODE__NAME": "a"}, "WALRUS_NODE__", check_value)
    assert [(o.key, o.value) for o in found] == [("name", "a"), ("ttl", 5)]


def test_orchestrator_advertise(tmp_path):
    assert load_orchestrator_config(write(tmp_path, "id: o1\n", "o.yaml")).advertise == ""
    assert load_orchestrator_config(write(tmp_path, "id: o1\nadvertise: o1:7400\n", "o.yaml")).advertise == "o1:7400"
    path = write(tmp_path, "id: o1\nadvertise: nohost\n", "o.yaml")
    with pytest.raises(ConfigError) as err:
        load_orchestrator_config(path)
    assert str(path) in str(err.value) and "'advertise'" in str(err.value)
