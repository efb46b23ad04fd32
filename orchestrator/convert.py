"""The one adapter between protobuf messages and the orchestrator's
dataclasses. Nothing else in ``orchestrator/`` builds or reads a message
field by field.

An agent's ``NodeStatus`` becomes the core's ``MemberView`` here, in one
step (``probe_from_pb``); the orchestrator keeps no other copy of it.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from walrus_ha.common.status import Role
from walrus_ha.orchestrator.core.model import MemberView
from walrus_ha.orchestrator.probe import AgentProbe, ProbeOutcome
from walrus_ha.orchestrator.snapshot import tag_fields
from walrus_ha.protos import cluster_pb2, common_pb2, node_agent_pb2

_ROLE_FROM_PB = {common_pb2.ROLE_PRIMARY: Role.PRIMARY, common_pb2.ROLE_STANDBY: Role.STANDBY,
                 common_pb2.ROLE_STOPPED: Role.STOPPED, common_pb2.ROLE_UNSPECIFIED: Role.STOPPED}
_ROLE_TO_PB = {Role.PRIMARY: common_pb2.ROLE_PRIMARY, Role.STANDBY: common_pb2.ROLE_STANDBY,
               Role.STOPPED: common_pb2.ROLE_STOPPED}


def role_from_pb(value: int) -> Role:
    """An engine's reported role; unspecified or unknown values read as STOPPED."""
    return _ROLE_FROM_PB.get(value, Role.STOPPED)


def role_to_pb(role: Role) -> int:
    """``Role.UNKNOWN`` is ``ROLE_UNSPECIFIED``."""
    return _ROLE_TO_PB.get(role, common_pb2.ROLE_UNSPECIFIED)


# -- NodeAgent -------------------------------------------------------------------

def probe_from_pb(name: str, address: str, msg: node_agent_pb2.NodeStatus,
                  stream_broken: bool = False, wall: Callable[[], float] = time.time) -> AgentProbe:
    """The answered probe of member ``name`` (the name it has in etcd) at
    ``address``: ``msg`` as the core's ``MemberView`` (reachable, agent up;
    priority and nofailover from the agent's tags; a planned restart's
    ``restart_left_s`` as ``restarting_until`` on ``wall``, read on arrival)
    plus the agent's tags, state and its view of the leader key. The rest of
    the status (write/receive LSNs, standbys, slots, version, ...) is for
    operators; the orchestrator does not read it."""
    e = msg.engine
    tags = tuple(sorted(msg.tags.items()))
    member = MemberView(
        name=name, reachable=True, agent_up=True, role=role_from_pb(e.role), timeline=e.timeline,
        term=e.term, flush_lsn=e.flush_lsn, replay_lsn=e.replay_lsn, streaming=e.streaming,
        upstream=e.upstream, fenced=e.fenced, needs_reclone=e.needs_reclone,
        sync_applied=e.sync_standbys, write_error=e.write_error,
        write_error_since=e.write_error_since,
        restarting_until=wall() + msg.restart_left_s if msg.restart_left_s > 0 else 0.0,
        **tag_fields(dict(tags)))
    return AgentProbe(name, address, ProbeOutcome.ANSWERED, member, tags=tags,
                      holds_leader=msg.holds_leader, leader_term=msg.leader_term,
                      stream_broken=stream_broken, state=msg.state)


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
