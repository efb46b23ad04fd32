"""The agent loop's pure decision: what to do given etcd's view and the engine."""
import pytest

from walrus_ha.node.agent.reconcile import Facts, LeaderFacts, Step, decide
from walrus_ha.node.engine.base import Role

B = LeaderFacts("b", 5, "127.0.0.1:9002", 3)
ME_LEADER = LeaderFacts("a", 5, "127.0.0.1:9001", 3)


def facts(**kw):
    base = dict(me="a", initialized=True, role=Role.STANDBY, upstream="b@127.0.0.1:9002",
                engine_term=5, needs_reclone=False, held_term=0, leader=B, highest_term=5)
    base.update(kw)
    return Facts(**base)


@pytest.mark.parametrize("f,step", [
    pytest.param(facts(), Step.KEEP, id="standby-following-leader"),
    pytest.param(facts(upstream="c@127.0.0.1:9003"), Step.FOLLOW, id="standby-wrong-upstream"),
    pytest.param(facts(upstream=""), Step.FOLLOW, id="standby-no-upstream"),
    pytest.param(facts(engine_term=4), Step.FOLLOW, id="standby-older-term-refollows"),
    pytest.param(facts(needs_reclone=True), Step.REJOIN, id="standby-needs-reclone"),
    pytest.param(facts(role=Role.PRIMARY, upstream=""), Step.REJOIN, id="old-primary-rejoins-leader"),
    pytest.param(facts(role=Role.PRIMARY, leader=None), Step.WAIT_FOR_LEADER, id="old-primary-no-leader-waits"),
    pytest.param(facts(leader=None), Step.WAIT_FOR_LEADER, id="standby-no-leader-waits"),
    pytest.param(facts(role=Role.PRIMARY, leader=ME_LEADER), Step.WAIT_FOR_EXPIRY,
                 id="restarted-primary-own-old-leader-key"),
    pytest.param(facts(role=Role.STANDBY, leader=ME_LEADER, leader_lease_is_ours=True), Step.RELEASE_KEY,
                 id="own-key-under-own-lease-but-not-acting-leader"),
    pytest.param(facts(highest_term=6), Step.KEEP, id="stale-leader-term-ignored"),
    pytest.param(facts(held_term=5, role=Role.PRIMARY, leader=ME_LEADER), Step.KEEP, id="holding"),
    pytest.param(facts(held_term=5, role=Role.PRIMARY, leader=None), Step.LEADERSHIP_LOST, id="holding-key-gone"),
    pytest.param(facts(held_term=5, role=Role.STOPPED, leader=ME_LEADER), Step.RESIGN, id="holding-engine-stopped"),
    pytest.param(facts(held_term=5, role=Role.PRIMARY, leader=LeaderFacts("b", 6, "x:1")),
                 Step.LEADERSHIP_LOST, id="holding-key-taken"),
    pytest.param(facts(held_term=4, role=Role.PRIMARY, leader=ME_LEADER), Step.LEADERSHIP_LOST,
                 id="holding-other-term"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None), Step.BOOTSTRAP, id="empty-no-leader"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None, initialize_claimed_by="a"),
                 Step.BOOTSTRAP, id="empty-claimed-by-me"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None, initialize_claimed_by="c"),
                 Step.WAIT_FOR_LEADER, id="empty-claimed-by-other"),
    pytest.param(facts(initialized=False, role=Role.STOPPED), Step.CLONE, id="empty-with-leader-clones"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None, members_with_data=("b",)),
                 Step.WAIT_FOR_LEADER, id="empty-keyspace-but-members-hold-data"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None, bootstrap_wait_left_s=0.5),
                 Step.WAIT_FOR_LEADER, id="empty-keyspace-watched-before-bootstrap"),
    pytest.param(facts(initialized=False, role=Role.STOPPED, leader=None, initialize_claimed_by="a",
                       members_with_data=("b",), bootstrap_wait_left_s=0.5),
                 Step.BOOTSTRAP, id="own-claim-finishes-its-bootstrap"),
    pytest.param(facts(role=Role.STOPPED, upstream=""), Step.FOLLOW, id="stopped-standby-follows"),
])
def test_decide(f, step):
    d = decide(f)
    assert d.step is step, d.reason
    if step in (Step.FOLLOW, Step.REJOIN, Step.CLONE):
        assert d.upstream.name == f.leader.name and d.term == f.leader.term


def test_primary_data_never_keeps_writing_without_leader():
    """Whatever the leader situation, a primary not holding the key is never KEEP."""
    for lead in (None, B, ME_LEADER, LeaderFacts("c", 9, "x:1")):
        d = decide(facts(role=Role.PRIMARY, upstream="", leader=lead, highest_term=9 if lead is None else lead.term))
        assert d.step in (Step.WAIT_FOR_LEADER, Step.WAIT_FOR_EXPIRY, Step.REJOIN)


def test_core_has_no_io_imports():
    import walrus_ha.node.agent.reconcile as mod
    imports = [line for line in open(mod.__file__) if line.startswith(("import ", "from "))]
    for banned in ("grpc", "etcd", "subprocess", "time", "threading", "common.dcs"):
        assert not [i for i in imports if banned in i], imports
