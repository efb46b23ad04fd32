"""The agent's proto adapter: request validation and status messages."""
import pytest

from walrus_ha.node.agent import convert
from walrus_ha.node.agent.agent import AgentState, AgentStatus
from walrus_ha.node.engine.base import EngineStatus, Role, SlotInfo, StandbyInfo, Upstream
from walrus_ha.protos import node_agent_pb2 as pb


@pytest.mark.parametrize("msg,fn,words", [
    (pb.PromoteRequest(term=0), convert.promote_from_pb, "term must be a positive integer"),
    (pb.DemoteRequest(term=0), convert.demote_from_pb, "term must be a positive integer"),
    (pb.FollowRequest(term=1, leader_name=" ", leader_data_address="h:1"), convert.follow_from_pb, "leader_name"),
    (pb.FollowRequest(term=1, leader_name="b@x", leader_data_address="h:1"), convert.follow_from_pb, "'@'"),
    (pb.FollowRequest(term=1, leader_name="b", leader_data_address="h:0"), convert.follow_from_pb, "host:port"),
    (pb.FollowRequest(term=1, leader_name="b", leader_data_address="h:99999"), convert.follow_from_pb, "host:port"),
    (pb.RejoinRequest(term=1, leader_name="b", leader_data_address=""), convert.rejoin_from_pb, "must not be empty"),
])
def test_bad_requests(msg, fn, words):
    with pytest.raises(convert.BadRequest, match=words):
        fn(msg)


def test_good_requests():
    f = convert.follow_from_pb(pb.FollowRequest(term=3, leader_name="b", leader_data_address="127.0.0.1:9",
                                                leader_timeline=2))
    assert f == convert.RepointRequest(3, Upstream("b", "127.0.0.1:9", 2))
    r = convert.rejoin_from_pb(pb.RejoinRequest(term=3, leader_name="b", leader_data_address="127.0.0.1:9",
                                                allow_reclone=True))
    assert r.allow_reclone and str(r.upstream) == "b@127.0.0.1:9"
    assert convert.promote_from_pb(pb.PromoteRequest(term=7, reason="x")) == convert.TermRequest(7, "x")


def test_status_round_trips_through_the_orchestrator_adapter():
    from walrus_ha.common.status import Role as SharedRole
    from walrus_ha.orchestrator.convert import probe_from_pb
    engine = EngineStatus(role=Role.PRIMARY, timeline=3, term=4, write_lsn=100, flush_lsn=90, replay_lsn=80,
                          receive_lsn=90, fenced=True, fence_reason="why", engine="embedded", upstream="u",
                          streaming=True, needs_reclone=True, write_error="disk full", write_error_since=12.5,
                          standbys=(StandbyInfo("b", sent_lsn=90, flush_lsn=80, flush_lag_bytes=10,
                                                sync_state="sync"),),
                          slots=(SlotInfo("b", restart_lsn=80, active=True, retained_bytes=20),),
                          sync_standbys="FIRST 1 (b)")
    status = AgentStatus(name="a", cluster="c", agent_address="h:1", data_address="h:2", engine=engine,
                         holds_leader=True, leader_term=4, lease_remaining_s=2.5,
                         tags={"priority": "1", "nofailover": "true"}, state=AgentState.PRIMARY)
    msg = convert.status_to_pb(status)
    assert msg.state == "primary" and msg.tags["priority"] == "1"
    wire = pb.NodeStatus.FromString(msg.SerializeToString())
    e = wire.engine                                  # what operators see: every field of the engine status
    assert (e.write_lsn, e.receive_lsn, e.fence_reason, e.engine) == (100, 90, "why", "embedded")
    assert [(x.name, x.sent_lsn, x.flush_lsn, x.flush_lag_bytes, x.sync_state) for x in e.standbys] == \
        [("b", 90, 80, 10, "sync")]
    assert [(x.name, x.restart_lsn, x.active, x.retained_bytes) for x in e.slots] == [("b", 80, True, 20)]
    back = probe_from_pb("a", "h:1", wire)            # what the orchestrator reads: the core's view
    m = back.member
    assert m.role is SharedRole.PRIMARY and Role is SharedRole
    assert (m.timeline, m.term, m.flush_lsn, m.replay_lsn, m.upstream, m.sync_applied) == (3, 4, 90, 80, "u",
                                                                                          "FIRST 1 (b)")
    assert m.fenced and m.streaming and m.needs_reclone and m.reachable and m.agent_up
    assert (m.write_error, m.write_error_since) == ("disk full", 12.5)
    assert m.nofailover and m.priority == 1
    assert back.answered and back.holds_leader and back.leader_term == 4
    assert dict(back.tags) == {"priority": "1", "nofailover": "true"}
