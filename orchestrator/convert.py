"""The one adapter between protobuf messages and the orchestrator's
dataclasses. Nothing else in ``orchestrator/`` builds or reads a message
field by field.
"""
from __future__ import annotations

from walrus_ha.node.engine.base import EngineStatus, Role, SlotInfo, StandbyInfo
from walrus_ha.orchestrator.probe import AgentStatus
from walrus_ha.protos import cluster_pb2, common_pb2, node_agent_pb2

_ROLE_FROM_PB = {common_pb2.ROLE_PRIMARY: Role.PRIMARY, common_pb2.ROLE_STANDBY: Role.STANDBY,
                 common_pb2.ROLE_STOPPED: Role.STOPPED, common_pb2.ROLE_UNSPECIFIED: Role.STOPPED}
_ROLE_TO_PB = {Role.PRIMARY: common_pb2.ROLE_PRIMARY, Role.STANDBY: common_pb2.ROLE_STANDBY,
               Role.STOPPED: common_pb2.ROLE_STOPPED}


def role_from_pb(value: int) -> Role:
    return _ROLE_FROM_PB.get(value, Role.STOPPED)


def role_to_pb(role: Role | str | None) -> int:
    if isinstance(role, str):
        try:
            role = Role(role)
        except ValueError:
            return common_pb2.ROLE_UNSPECIFIED
    return _ROLE_TO_PB.get(role, common_pb2.ROLE_UNSPECIFIED)


# -- NodeAgent -------------------------------------------------------------------

def engine_status_from_pb(msg: common_pb2.EngineStatus) -> EngineStatus:
    return EngineStatus(
        role=role_from_pb(msg.role), timeline=msg.timeline, term=msg.term,
        write_lsn=msg.write_lsn, flush_lsn=msg.flush_lsn, replay_lsn=msg.replay_lsn,
        receive_lsn=msg.receive_lsn, upstream=msg.upstream, streaming=msg.streaming,
        fenced=msg.fenced, fence_reason=msg.fence_reason, needs_reclone=msg.needs_reclone,
        standbys=tuple(StandbyInfo(
            name=s.name, sent_lsn=s.sent_lsn, write_lsn=s.write_lsn, flush_lsn=s.flush_lsn,
            replay_lsn=s.replay_lsn, send_lag_bytes=s.send_lag_bytes,
            flush_lag_bytes=s.flush_lag_bytes, replay_lag_bytes=s.replay_lag_bytes,
            write_lag_s=s.write_lag_s, flush_lag_s=s.flush_lag_s, replay_lag_s=s.replay_lag_s,
            sync_state=s.sync_state) for s in msg.standbys),
        slots=tuple(SlotInfo(name=s.name, restart_lsn=s.restart_lsn, active=s.active,
                             lost=s.lost, retained_bytes=s.retained_bytes) for s in msg.slots),
        engine=msg.engine, sync_standbys=msg.sync_standbys, detail=msg.detail,
        write_error=msg.write_error, write_error_since=msg.write_error_since,
        wal_repairs=msg.wal_repairs, wal_repair=msg.wal_repair)


def agent_status_from_pb(msg: node_agent_pb2.NodeStatus) -> AgentStatus:
    return AgentStatus(
        name=msg.name, agent_address=msg.agent_address, data_address=msg.data_address,
        engine=engine_status_from_pb(msg.engine), holds_leader=msg.holds_leader,
        leader_term=msg.leader_term, lease_remaining_s=msg.lease_remaining_s,
        tags=tuple(sorted(msg.tags.items())), state=msg.state, version=msg.version)


# -- Cluster ---------------------------------------------------------------------

def leader_to_pb(leader, writable: bool = False) -> cluster_pb2.Leader:
    """A ``common.records.LeaderRecord`` (or None) as a ``Leader`` message;
    ``writable`` as judged by ``service.leader_writable``."""
    if leader is None:
        return cluster_pb2.Leader(present=False)
    return cluster_pb2.Leader(name=leader.name, term=leader.term, timeline=leader.timeline,
                              agent_address=leader.agent_address, data_address=leader.data_address,
                              since=leader.since, present=True, writable=writable)


def candidate_to_pb(c: dict) -> cluster_pb2.Candidate:
    """One ranked candidate, as published in a history record (a dict)."""
    return cluster_pb2.Candidate(
        name=str(c.get("name", "")), flush_lsn=int(c.get("flush_lsn", 0) or 0),
        timeline=int(c.get("timeline", 0) or 0), priority=int(c.get("priority", 0) or 0),
        eligible=bool(c.get("eligible", False)), reason=str(c.get("reason", "")),
        rank=int(c.get("rank", 0) or 0))


def history_to_pb(rec) -> cluster_pb2.HistoryRecord:
    """A ``common.records.HistoryRecord`` as a message."""
    return cluster_pb2.HistoryRecord(
        term=rec.term, kind=rec.kind, old_leader=rec.old_leader, new_leader=rec.new_leader,
        last_primary_lsn=rec.last_primary_lsn, promoted_lsn=rec.promoted_lsn,
        bytes_possibly_lost=rec.bytes_possibly_lost, started_at=rec.started_at,
        finished_at=rec.finished_at, candidates=[candidate_to_pb(c) for c in rec.candidates],
        reason=rec.reason, orchestrator=rec.orchestrator, timeline=rec.timeline,
        discarded_by=rec.discarded_by, discarded_bytes=rec.discarded_bytes,
        discarded_records=rec.discarded_records, discarded_transactions=rec.discarded_transactions,
        discard_fork_lsn=rec.discard_fork_lsn, discard_end_lsn=rec.discard_end_lsn)
