"""The one adapter between NodeAgent protobuf messages and the agent's
dataclasses. Requests are validated here: a bad argument raises
``BadRequest`` with a sentence (the servicer answers INVALID_ARGUMENT).
"""
from __future__ import annotations

from walrus_ha.common.config import parse_address
from walrus_ha.common.errors import InvalidArgument
from walrus_ha.common.names import name_problem
from walrus_ha.node.agent.operations import RestartRequest, RestartRole
from walrus_ha.node.agent.port import RepointRequest, TermRequest
from walrus_ha.node.agent.status import AgentStatus
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.convert import engine_status_to_pb
from walrus_ha.protos import node_agent_pb2

MAX_ADDRESS = 300     # host:port; longer is a mistake (and would not fit an error sentence)
MAX_REASON = 1000     # Promote/Demote reason: logged and published in the member's state


class BadRequest(InvalidArgument):
    """A request argument is invalid; the message is a sentence for the caller."""


def _check_term(term: int) -> int:
    if term <= 0:
        raise BadRequest("term must be a positive integer (terms start at 1)")
    return term


def _upstream(name: str, address: str, timeline: int = 0) -> Upstream:
    if not name.strip():
        raise BadRequest("leader_name must not be empty")
    why = name_problem(name, "leader_name")
    if why is not None:
        raise BadRequest(why)
    if not address:
        raise BadRequest("leader_data_address must not be empty (expected host:port)")
    if len(address) > MAX_ADDRESS:
        raise BadRequest(f"leader_data_address is {len(address)} characters long; the limit is {MAX_ADDRESS}")
    try:
        parse_address(address)
    except ValueError as exc:
        raise BadRequest(f"leader_data_address: {exc}") from None
    return Upstream(name=name, address=address, timeline=timeline)


def _reason(text: str) -> str:
    if len(text) > MAX_REASON:
        raise BadRequest(f"reason is {len(text)} characters long; the limit is {MAX_REASON}")
    return text


def promote_from_pb(msg: node_agent_pb2.PromoteRequest) -> TermRequest:
    return TermRequest(_check_term(msg.term), _reason(msg.reason))


def demote_from_pb(msg: node_agent_pb2.DemoteRequest) -> TermRequest:
    return TermRequest(_check_term(msg.term), _reason(msg.reason))


def follow_from_pb(msg: node_agent_pb2.FollowRequest) -> RepointRequest:
    term = _check_term(msg.term)
    return RepointRequest(term, _upstream(msg.leader_name, msg.leader_data_address, msg.leader_timeline))


def rejoin_from_pb(msg: node_agent_pb2.RejoinRequest) -> RepointRequest:
    term = _check_term(msg.term)
    return RepointRequest(term, _upstream(msg.leader_name, msg.leader_data_address), msg.allow_reclone)


def restart_from_pb(msg: node_agent_pb2.RestartRequest) -> RestartRequest:
    try:
        role = RestartRole.parse(msg.role)
    except ValueError:
        raise BadRequest(f"role must be any, primary or replica, not {msg.role!r}") from None
    if not 0 <= msg.timeout_s <= 3600:            # also refuses NaN
        raise BadRequest(f"timeout_s must be between 0 and 3600 seconds, not {msg.timeout_s!r}")
    return RestartRequest(role, msg.timeout_s, _reason(msg.reason), msg.pending)


def status_to_pb(s: AgentStatus) -> node_agent_pb2.NodeStatus:
    return node_agent_pb2.NodeStatus(
        name=s.name, cluster=s.cluster, agent_address=s.agent_address, data_address=s.data_address,
        engine=engine_status_to_pb(s.engine), holds_leader=s.holds_leader, leader_term=s.leader_term,
        lease_remaining_s=s.lease_remaining_s, tags=dict(s.tags), state=s.state.value,
        version=s.version, restart_left_s=s.restart_left_s, config_revision=s.config_revision,
        pending_restart=list(s.pending_restart))


def reply_to_pb(changed: bool, detail: str, status: AgentStatus) -> node_agent_pb2.ActionReply:
    return node_agent_pb2.ActionReply(changed=changed, detail=detail, status=status_to_pb(status))
