"""The one adapter between NodeAgent protobuf messages and the agent's
dataclasses. Requests are validated here: a bad argument raises
``BadRequest`` with a sentence (the servicer answers INVALID_ARGUMENT).
"""
from __future__ import annotations

from dataclasses import dataclass

from walrus_ha.node.agent.agent import AgentStatus
from walrus_ha.node.engine.base import EngineStatus, Role, Upstream
from walrus_ha.protos import common_pb2, node_agent_pb2
from walrus_ha.common.config import parse_address
from walrus_ha.common.errors import InvalidArgument
from walrus_ha.common.names import name_problem

MAX_ADDRESS = 300     # host:port; longer is a mistake (and would not fit an error sentence)
MAX_REASON = 1000     # Promote/Demote reason: logged and published in the member's state

_ROLE_TO_PB = {Role.PRIMARY: common_pb2.ROLE_PRIMARY, Role.STANDBY: common_pb2.ROLE_STANDBY,
               Role.STOPPED: common_pb2.ROLE_STOPPED}


class BadRequest(InvalidArgument):
    """A request argument is invalid; the message is a sentence for the caller."""


@dataclass(frozen=True)
class TermRequest:
    """Promote / Demote: the fencing token and why."""
    term: int
    reason: str = ""


@dataclass(frozen=True)
class RepointRequest:
    """Follow / Rejoin: the new leader, its term and whether re-cloning is allowed."""
    term: int
    upstream: Upstream
    allow_reclone: bool = False


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


def engine_status_to_pb(s: EngineStatus) -> common_pb2.EngineStatus:
    return common_pb2.EngineStatus(
        role=_ROLE_TO_PB.get(s.role, common_pb2.ROLE_UNSPECIFIED), timeline=s.timeline, term=s.term,
        write_lsn=s.write_lsn, flush_lsn=s.flush_lsn, replay_lsn=s.replay_lsn,
        receive_lsn=s.receive_lsn, upstream=s.upstream, streaming=s.streaming, fenced=s.fenced,
        fence_reason=s.fence_reason, needs_reclone=s.needs_reclone,
        standbys=[common_pb2.StandbyStatus(
            name=x.name, sent_lsn=x.sent_lsn, write_lsn=x.write_lsn, flush_lsn=x.flush_lsn,
            replay_lsn=x.replay_lsn, send_lag_bytes=max(0, x.send_lag_bytes),
            flush_lag_bytes=max(0, x.flush_lag_bytes), replay_lag_bytes=max(0, x.replay_lag_bytes),
            write_lag_s=x.write_lag_s, flush_lag_s=x.flush_lag_s, replay_lag_s=x.replay_lag_s,
            sync_state=x.sync_state) for x in s.standbys],
        slots=[common_pb2.SlotStatus(name=x.name, restart_lsn=x.restart_lsn, active=x.active,
                                     lost=x.lost, retained_bytes=max(0, x.retained_bytes))
               for x in s.slots],
        engine=s.engine, sync_standbys=s.sync_standbys, detail=s.detail,
        write_error=s.write_error, write_error_since=s.write_error_since,
        wal_repairs=s.wal_repairs, wal_repair=s.wal_repair)


def status_to_pb(s: AgentStatus) -> node_agent_pb2.NodeStatus:
    return node_agent_pb2.NodeStatus(
        name=s.name, cluster=s.cluster, agent_address=s.agent_address, data_address=s.data_address,
        engine=engine_status_to_pb(s.engine), holds_leader=s.holds_leader, leader_term=s.leader_term,
        lease_remaining_s=s.lease_remaining_s, tags=dict(s.tags), state=s.state.value,
        version=s.version)


def reply_to_pb(changed: bool, detail: str, status: AgentStatus) -> node_agent_pb2.ActionReply:
    return node_agent_pb2.ActionReply(changed=changed, detail=detail, status=status_to_pb(status))
