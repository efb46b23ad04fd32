"""The cluster-wide config document: validation, key=value edits, diff, seed
and resolve (pure, common/cluster_config.py), and the follower's choices
against a recording DCS (common/dynconfig.py)."""
from types import SimpleNamespace

import pytest

from walrus_ha.common import cluster_config as cc
from walrus_ha.common.dynconfig import ConfigFollower
from walrus_ha.common.errors import ConfigError
from walrus_ha.common.keyspace import Keyspace
from walrus_ha.node.config import NodeConfig, PostgresConfig
from walrus_ha.orchestrator.config import OrchestratorConfig

NODE = NodeConfig(name="n1", data_dir="/tmp/n1", ttl=3.0, loop_wait=0.2, retry_timeout=1.0, safety_margin=0.5,
                  postgres=PostgresConfig(parameters={"work_mem": "4MB", "max_connections": "100"}))
ORCH = OrchestratorConfig(id="o1", ttl=30.0, loop_wait=0.1, retry_timeout=1.0, synchronous_mode=True)


# -- validation: one schema, errors name the key ------------------------------------

@pytest.mark.parametrize("doc,key", [
    ({"ttl": "x"}, "'ttl' must be a number"),
    ({"ttl": 0.5}, "'ttl' must be >= 1.0"),
    ({"loop_wait": 5, "retry_timeout": 5, "ttl": 10}, "'ttl': loop_wait + 2*retry_timeout"),
    ({"synchronous_method": "all"}, "'synchronous_method' must be one of"),
    ({"synchronous_mode": "yes please"}, "'synchronous_mode' must be true or false"),
    ({"orchestrator": {"ttl": 2, "loop_wait": 1, "retry_timeout": 1}}, "'orchestrator.ttl'"),
    ({"postgres": {"parameters": {"port": 5433}}}, "'postgres.parameters.port': is set by walrus"),
    ({"postgres": {"parameters": {"work_mem": [1, 2]}}}, "'postgres.parameters.work_mem' must be a PostgreSQL"),
    ({"bogus": 1}, "unknown key 'bogus'"),
], ids=["type", "min", "contradiction", "choice", "bool", "orchestrator-section", "reserved-pg", "pg-list",
        "unknown"])
def test_a_bad_document_is_refused_naming_the_key(doc, key):
    with pytest.raises(ConfigError, match=key.replace("*", r"\*").replace("+", r"\+")):
        cc.validate(doc)


def test_file_and_document_share_bounds():
    with pytest.raises(ConfigError, match="'ttl' must be >= 1.0"):
        cc.validate({"ttl": 0.5})
    from walrus_ha.common.config import from_dict
    with pytest.raises(ConfigError, match="'ttl' must be >= 1.0"):
        from_dict(OrchestratorConfig, {"id": "o", "ttl": 0.5})


def test_normalize_keeps_only_present_keys_in_canonical_form():
    doc = {"ttl": 5, "synchronous_mode": True, "postgres": {"parameters": {"jit": False, "max_connections": 200}}}
    assert cc.normalize(doc) == {"ttl": 5.0, "synchronous_mode": True,
                                 "postgres": {"parameters": {"jit": "off", "max_connections": "200"}}}


# -- key=value --------------------------------------------------------------------

def test_assignments_are_typed_yaml_scalars():
    got = cc.parse_assignments(["ttl=20", "synchronous_mode=on", "postgres.parameters.work_mem=8MB",
                                "orchestrator.loop_wait=0.5", "reseed_wait=null", "fast_path="])
    assert [(a.key, a.value) for a in got] == [("ttl", 20), ("synchronous_mode", True),
                                               ("postgres.parameters.work_mem", "8MB"),
                                               ("orchestrator.loop_wait", 0.5), ("reseed_wait", None),
                                               ("fast_path", None)]


@pytest.mark.parametrize("item,problem", [
    ("ttl", "expected key=value"), ("bogus=1", "unknown key 'bogus'"),
    ("orchestrator.nope=1", "allowed in orchestrator"), ("ttl.x=1", "'ttl' has no keys below it"),
    ("postgres.parameters=1", "is a section"), ("orchestrator=1", "is a section"),
    ("ttl=[1, 2]", "expected a single value"),
])
def test_bad_assignments_name_the_key(item, problem):
    with pytest.raises(ConfigError, match=problem):
        cc.parse_assignments([item])


def test_apply_assignments_sets_and_removes():
    doc = {"ttl": 3.0, "postgres": {"parameters": {"work_mem": "4MB"}}}
    new = cc.apply_assignments(doc, cc.parse_assignments(["ttl=5", "postgres.parameters.work_mem=null",
                                                          "postgres.parameters.jit=off"]))
    assert new == {"ttl": 5, "postgres": {"parameters": {"jit": False}}}
    assert doc == {"ttl": 3.0, "postgres": {"parameters": {"work_mem": "4MB"}}}     # not changed in place


# -- diff ------------------------------------------------------------------------

def test_diff_names_each_key():
    old = {"ttl": 3.0, "loop_wait": 0.2, "postgres": {"parameters": {"work_mem": "4MB"}}}
    new = {"ttl": 5.0, "postgres": {"parameters": {"work_mem": "4MB", "jit": "off"}}, "fast_path": False}
    changes = cc.diff(old, new)
    assert [c.line() for c in changes] == ["+ fast_path: false", "- loop_wait: 0.2",
                                           "+ postgres.parameters.jit: off", "~ ttl: 3 -> 5"]
    assert cc.diff(new, new) == [] and cc.render_diff([]) == "no change"


# -- seed and resolve --------------------------------------------------------------

def test_seed_takes_each_kinds_keys_from_its_file():
    assert cc.seed(cc.MemberKind.NODE, NODE) == {
        "ttl": 3.0, "loop_wait": 0.2, "retry_timeout": 1.0,
        "postgres": {"parameters": {"work_mem": "4MB", "max_connections": "100"}}}
    orch = cc.seed(cc.MemberKind.ORCHESTRATOR, ORCH)
    assert orch["orchestrator"]["ttl"] == 30.0 and orch["synchronous_mode"] is True and "ttl" not in orch
    cc.validate(cc.unflatten({**cc.flatten(orch), **cc.flatten(cc.seed(cc.MemberKind.NODE, NODE))}))


def test_missing_keys_are_only_those_absent():
    doc = {"ttl": 4.0, "postgres": {"parameters": {}}}
    assert cc.missing(cc.MemberKind.NODE, NODE, doc) == {"loop_wait": 0.2, "retry_timeout": 1.0}
    assert cc.missing(cc.MemberKind.NODE, NODE, cc.seed(cc.MemberKind.NODE, NODE)) == {}


def test_resolve_etcd_wins_and_says_so():
    doc = cc.normalize({"ttl": 5, "loop_wait": 0.5, "postgres": {"parameters": {"work_mem": "8MB", "jit": "off"}},
                        "synchronous_mode": False})
    r = cc.resolve(cc.MemberKind.NODE, NODE, doc)
    assert (r.config.ttl, r.config.loop_wait, r.config.retry_timeout) == (5.0, 0.5, 1.0)
    assert r.config.postgres.parameters == {"work_mem": "8MB", "max_connections": "100", "jit": "off"}
    assert r.from_file == ("retry_timeout",)
    assert {o.key for o in r.overrides} == {"ttl", "loop_wait", "postgres.parameters.work_mem"}
    assert r.config.name == "n1" and r.config.safety_margin == 0.5          # per-node keys untouched
    o = cc.resolve(cc.MemberKind.ORCHESTRATOR, ORCH, doc).config
    assert o.synchronous_mode is False and o.ttl == 30.0                     # node ttl is not the election's


def test_resolve_refuses_a_document_that_breaks_the_members_rules():
    with pytest.raises(ConfigError, match="'safety_margin'"):
        cc.resolve(cc.MemberKind.NODE, NODE, {"ttl": 1.0, "loop_wait": 0.1, "retry_timeout": 0.2})


# -- the follower ---------------------------------------------------------------

class RecordingDcs:
    """Records compare-and-swap writes; ``win`` decides their outcome."""

    def __init__(self, win=True):
        self.keys = Keyspace("c")
        self.timeout_s = 1.0
        self.win = win
        self.writes = []

    def cas_put(self, key, value, rev, deadline_s=None):
        self.writes.append((key, value, rev))
        return self.win


def view(doc, rev):
    return SimpleNamespace(config=doc, config_mod_revision=rev)


def test_follower_seeds_missing_keys_once_per_revision_by_cas():
    dcs = RecordingDcs()
    f = ConfigFollower(cc.MemberKind.NODE, NODE, dcs)
    assert f.update(view(None, 0)) is NODE
    assert dcs.writes == [("/walrus/c/config", cc.seed(cc.MemberKind.NODE, NODE), 0)]
    f.update(view(None, 0))
    assert len(dcs.writes) == 1                    # same revision: not again
    doc = {"ttl": 6.0, "loop_wait": 0.2, "retry_timeout": 1.0}
    cfg = f.update(view(doc, 7))
    assert cfg.ttl == 6.0 and f.revision == 7
    assert dcs.writes[-1][2] == 7 and dcs.writes[-1][1]["ttl"] == 6.0      # adds postgres.parameters only


def test_follower_keeps_the_last_good_config_on_a_bad_document():
    f = ConfigFollower(cc.MemberKind.NODE, NODE, RecordingDcs(), seed=False)
    good = f.update(view({"ttl": 6.0}, 3))
    assert good.ttl == 6.0
    assert f.update(view({"ttl": "soon"}, 4)) is good
    assert "'ttl' must be a number" in f.error and f.revision == 3


def test_follower_names_the_environment_variable_etcd_overrides():
    f = ConfigFollower(cc.MemberKind.NODE, NODE, RecordingDcs(), seed=False, env={"WALRUS_NODE__TTL": "3"},
                       env_prefix="WALRUS_NODE__")
    assert f._variable("ttl") == "WALRUS_NODE__TTL" and f._variable("loop_wait") == ""


def test_follower_notices_a_new_document_at_a_reused_revision():
    f = ConfigFollower(cc.MemberKind.NODE, NODE, RecordingDcs(), seed=False)
    assert f.update(view({"ttl": 6.0}, 5)).ttl == 6.0
    assert f.update(view({"ttl": 8.0}, 5)).ttl == 8.0       # an emptied etcd counts from 1 again


def test_after_etcd_lost_the_document_a_member_puts_back_what_it_ran_with():
    dcs = RecordingDcs()
    f = ConfigFollower(cc.MemberKind.NODE, NODE, dcs)
    ran = {"ttl": 6.0, "loop_wait": 0.2, "retry_timeout": 1.0, "postgres": {"parameters": {}},
           "synchronous_mode": True, "orchestrator": {"ttl": 30.0}}
    f.update(view(ran, 9))
    assert dcs.writes == []                       # nothing missing: nothing written
    assert f.update(view(None, 0)).ttl == 6.0     # keeps running with it meanwhile
    key, doc, rev = dcs.writes[-1]
    assert rev == 0 and doc == ran                # not the file's ttl 3, and the edit of synchronous_mode kept
