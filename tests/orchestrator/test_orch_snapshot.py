"""The snapshot builder: etcd view + agent probes -> the core's snapshot (pure)."""
from __future__ import annotations

import pytest

from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.orchestrator.config import OrchestratorConfig
from walrus_ha.orchestrator.convert import probe_from_pb
from walrus_ha.orchestrator.core.model import FailoverState, OperationKind, Phase, Role, SyncMethod
from walrus_ha.orchestrator.probe import AgentProbe, ProbeOutcome
from walrus_ha.orchestrator.snapshot import PrimaryLsnTracker, agent_addresses, build_snapshot, core_config, member_view
from walrus_ha.protos import common_pb2, node_agent_pb2


def record(name, **kw):
    base = dict(agent_address=f"127.0.0.1:70{ord(name[0]) % 100:02d}", data_address="127.0.0.1:1",
                role="standby", timeline=2, term=2, flush_lsn=100, replay_lsn=90, streaming=True,
                upstream="a")
    base.update(kw)
    return MemberRecord(name=name, **base)


def answered(name, tags=(), **engine):
    """An agent's ``NodeStatus`` as the orchestrator receives it, through its one converter."""
    base = dict(role=common_pb2.ROLE_STANDBY, timeline=3, term=3, flush_lsn=500, replay_lsn=450,
                streaming=True, upstream="a@127.0.0.1:1")
    base.update(engine)
    msg = node_agent_pb2.NodeStatus(name=name, engine=common_pb2.EngineStatus(**base), tags=dict(tags))
    return probe_from_pb(name, "127.0.0.1:9", msg)


def failed(name, outcome):
    return AgentProbe(name, "127.0.0.1:9", outcome, detail="x")


@pytest.mark.parametrize("rec,probe,expect", [
    pytest.param(record("b"), answered("b"),
                 dict(reachable=True, agent_up=True, flush_lsn=500, timeline=3, has_member_key=True),
                 id="agent-answer-wins-over-member-key"),
    pytest.param(record("b"), failed("b", ProbeOutcome.REFUSED),
                 dict(reachable=False, agent_up=False, flush_lsn=100, timeline=2, streaming=True),
                 id="refused-is-provably-dead-and-uses-key"),
    pytest.param(record("b"), failed("b", ProbeOutcome.TIMEOUT),
                 dict(reachable=False, agent_up=True, flush_lsn=100),
                 id="timeout-is-not-dead"),
    pytest.param(record("b"), failed("b", ProbeOutcome.ERROR),
                 dict(reachable=False, agent_up=True), id="error-status-is-not-dead"),
    pytest.param(None, failed("b", ProbeOutcome.REFUSED),
                 dict(reachable=False, agent_up=False, has_member_key=False, role=Role.UNKNOWN),
                 id="dead-leader-without-member-key"),
    pytest.param(record("b"), None, dict(reachable=False, agent_up=True, has_member_key=True),
                 id="no-probe"),
    pytest.param(record("b", tags={"nofailover": True, "priority": 5}), None,
                 dict(nofailover=True, priority=5), id="tags-from-member-key"),
    pytest.param(record("b"), answered("b", tags=(("nofailover", "true"), ("priority", "-3"))),
                 dict(nofailover=True, priority=-3), id="string-tags-from-agent"),
    pytest.param(record("b", role="primary"), answered("b", role=common_pb2.ROLE_PRIMARY, sync_standbys="FIRST 1 (c)"),
                 dict(role=Role.PRIMARY, sync_applied="FIRST 1 (c)"), id="primary-with-applied-sync"),
    pytest.param(record("b", tags={"priority": 5}, highest_term=7), answered("b", tags=(("nofailover", "false"),)),
                 dict(priority=5, nofailover=False, highest_term=7, has_member_key=True, flush_lsn=500),
                 id="answer-keeps-what-only-etcd-knows"),
    pytest.param(record("b"), answered("b", role=common_pb2.ROLE_UNSPECIFIED),
                 dict(role=Role.STOPPED, reachable=True), id="unspecified-role-reads-as-stopped"),
])
def test_member_view(rec, probe, expect):
    m = member_view("b", rec, probe)
    for key, value in expect.items():
        assert getattr(m, key) == value, key


def test_build_snapshot_unions_keys_and_probes():
    view = ClusterView(revision=7, term=4,
                       leader=LeaderRecord(name="a", term=4, timeline=4, agent_address="127.0.0.1:7001"),
                       members=(record("b"), record("c")),
                       sync=SyncRecord(method="any", num=1, names=("b", "c"), leader="a", term=4),
                       paused=True, switchover={"candidate": "c", "expected_leader": "a"},
                       failover=FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=5,
                                              new_leader="b").to_dict(),
                       initialize="a")
    probes = {"a": failed("a", ProbeOutcome.REFUSED), "b": answered("b")}
    snap = build_snapshot(view, probes, last_known_primary_lsn=900, last_leader="x")
    assert snap.last_leader == "a"                # the leader key wins over memory
    assert build_snapshot(ClusterView(), {}, last_leader="x").last_leader == "x"
    assert [m.name for m in snap.members] == ["a", "b", "c"]
    assert snap.member("a").provably_dead and not snap.member("a").has_member_key
    assert snap.leader.name == "a" and snap.leader.term == 4 and snap.term == 4
    assert snap.sync.method is SyncMethod.ANY and snap.sync.names == ("b", "c")
    assert snap.paused and snap.initialized
    assert snap.switchover.candidate == "c" and snap.switchover.expected_leader == "a"
    assert snap.failover.term == 5 and snap.failover.phase is Phase.PROMOTING
    assert snap.last_known_primary_lsn == 900


def test_agent_addresses_include_leader_without_key():
    view = ClusterView(leader=LeaderRecord(name="a", term=1, agent_address="127.0.0.1:1"),
                       members=(record("b", agent_address="127.0.0.1:2"),))
    assert agent_addresses(view) == {"a": "127.0.0.1:1", "b": "127.0.0.1:2"}


def test_primary_lsn_tracker_keeps_value_through_failover():
    def snap(leader_term, lsn, leader=True):
        view = ClusterView(term=leader_term,
                           leader=LeaderRecord(name="a", term=leader_term) if leader else None,
                           members=(record("a", role="primary", flush_lsn=lsn),))
        return build_snapshot(view, {})
    t = PrimaryLsnTracker()
    assert t.update(snap(1, 100)) == 100
    assert t.update(snap(1, 300)) == 300
    assert t.update(snap(1, 200)) == 300          # never goes back within a term
    assert t.update(snap(1, 0, leader=False)) == 300   # leader gone: remembered
    assert t.leader == "a"
    assert t.update(snap(2, 50)) == 50            # new term: new count


def test_core_config_dynamic_overrides():
    cfg = OrchestratorConfig(id="o1", maximum_lag_on_failover=10)
    base = core_config(cfg)
    assert base.maximum_lag_on_failover == 10 and base.synchronous_method is SyncMethod.FIRST
    merged = core_config(cfg, {"maximum_lag_on_failover": 99, "synchronous_mode": True,
                               "synchronous_method": "any", "unknown": 1, "fast_path": "bad"})
    assert merged.maximum_lag_on_failover == 99 and merged.synchronous_mode
    assert merged.synchronous_method is SyncMethod.ANY and merged.fast_path is True
