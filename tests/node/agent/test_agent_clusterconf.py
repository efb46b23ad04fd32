"""``clusterconf.reload``: a re-read node file applies its live keys and
holds back (as pending restart) the keys only a restart can change."""
import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest

from walrus_ha.common import cluster_config as cc
from walrus_ha.common.dynconfig import ConfigFollower
from walrus_ha.common.errors import ConfigError
from walrus_ha.node.agent import clusterconf
from walrus_ha.node.config import NodeConfig, PostgresConfig, Tags

FILE = NodeConfig(name="n1", data_dir="/tmp/n1", ttl=3.0, loop_wait=0.2, retry_timeout=1.0, safety_margin=0.5)


class Engine:
    def __init__(self):
        self.applied = []
        self.pending_restart = ()

    def apply_parameters(self, parameters):
        self.applied.append(parameters)
        self.pending_restart = tuple(n for n in parameters if n == "shared_buffers")
        return self.pending_restart


def agent(doc=None, rev=0):
    follower = ConfigFollower(cc.MemberKind.NODE, FILE, dcs=None, seed=False)
    a = SimpleNamespace(config=FILE, config_follower=follower, engine=Engine(), agent_pending=(),
                        lock=threading.RLock(), view=SimpleNamespace(config=doc, config_mod_revision=rev),
                        wake=lambda: None)
    clusterconf.follow(a, a.view)
    return a


def test_reload_applies_live_keys_and_holds_back_the_rest():
    a = agent({"ttl": 4.0, "postgres": {"parameters": {"work_mem": "8MB"}}}, 3)
    assert a.config.ttl == 4.0 and a.engine.applied == [{"work_mem": "8MB"}]
    new = replace(FILE, tags=Tags(priority=5), agent_listen="127.0.0.1:7001", ttl=9.0,
                  postgres=PostgresConfig(parameters={"shared_buffers": "64MB", "work_mem": "1MB"}))
    r = clusterconf.reload(a, lambda: new)
    assert r.changed and set(r.applied) == {"tags.priority", "postgres.parameters.shared_buffers"}
    assert "holds postgres.parameters.work_mem, ttl" in r.detail      # etcd holds them: the file is not used
    assert r.pending_restart == ("shared_buffers", "agent:agent_listen")
    assert a.config.tags.priority == 5 and a.config.agent_listen == FILE.agent_listen   # held back
    assert a.config.ttl == 4.0                                  # etcd still wins for a cluster key
    assert a.engine.applied[-1] == {"shared_buffers": "64MB", "work_mem": "8MB"}   # etcd's work_mem wins


def test_a_bad_file_changes_nothing():
    a = agent()

    def bad():
        raise ConfigError("node.yaml: 'ttl' must be a number")
    with pytest.raises(ConfigError):
        clusterconf.reload(a, bad)
    assert a.config is FILE and a.agent_pending == ()
