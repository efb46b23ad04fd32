"""Run the decision core's actions: NodeAgent RPCs and etcd writes.

The one rule: every action is idempotent and bounded. Agent RPCs are retried
only while the agent is unreachable (UNAVAILABLE / DEADLINE_EXCEEDED), each
attempt bounded by ``action_timeout`` (``max(rpc_timeout, retry_timeout)``:
a promote does real work, and an attempt cut short would only be sent again
while the first still runs) and the whole by twice that (tenacity, via
``common.grpcutil.call_with_retry``); etcd writes use the
DCS's own deadline-bounded retries and compare-and-swap where the core's
snapshot could be stale (``set_sync`` against the mod revision read).
``execute`` never raises for an expected failure: it returns an
``Outcome`` whose ``ok`` is False and whose ``detail`` says why.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from walrus_ha.common import grpcutil
from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView, HistoryRecord, SyncRecord
from walrus_ha.orchestrator.core.model import (
    Action,
    ActionKind,
    ClearSwitchover,
    DemoteForSwitchover,
    Follow,
    HistoryEntry,
    OperationKind,
    Promote,
    PublishSync,
    RecordHistory,
    Rejoin,
    RevokeLeaderLease,
    SaveFailoverState,
)
from walrus_ha.orchestrator.core.reseed import ReseedKeyspace
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one action did. ``changed`` False: it was already so."""
    action: Action
    ok: bool
    changed: bool = False
    detail: str = ""
    hopeless: bool = False      # the agent refused for a reason a retry cannot fix (not unreachable)


class Stubs(Protocol):
    def stub(self, name: str) -> node_agent_pb2_grpc.NodeAgentStub | None: ...

    def address(self, name: str) -> str: ...


LOWER_BOUND_NOTE = ("RPO: at least {n} bytes possibly lost (a lower bound: last_primary_lsn is the "
                    "dead primary's last reported flush LSN; it may have flushed more before it died)")


def history_record(entry: HistoryEntry, orchestrator: str) -> HistoryRecord:
    """The core's ``HistoryEntry`` as the stored ``HistoryRecord``.

    After a failover the dead primary's final LSN is unknown: the receipt's
    ``bytes_possibly_lost`` is a lower bound, and the reason says so. (A
    switchover's old primary reported its final flush LSN when demoted.)"""
    reason = entry.reason
    if entry.kind is OperationKind.FAILOVER:
        reason = f"{reason}; {LOWER_BOUND_NOTE.format(n=entry.bytes_possibly_lost)}"
    return HistoryRecord(
        term=entry.term, kind=entry.kind.value, old_leader=entry.old_leader,
        new_leader=entry.new_leader, last_primary_lsn=entry.last_primary_lsn,
        promoted_lsn=entry.promoted_lsn, bytes_possibly_lost=entry.bytes_possibly_lost,
        started_at=entry.started_at, finished_at=entry.finished_at,
        candidates=tuple(c.to_dict() for c in entry.candidates), reason=reason,
        orchestrator=orchestrator, timeline=entry.timeline)


class Executor:
    """Executes actions against the agents (``stubs``) and etcd (``dcs``).

    ``view`` passed to ``execute`` is the etcd view the decision was made on:
    it supplies addresses (the leader's data address for Follow/Rejoin) and
    mod revisions for compare-and-swap.
    """

    def __init__(self, dcs: Any, stubs: Stubs, orch_id: str, *, rpc_timeout: float,
                 retry_timeout: float) -> None:
        self.dcs = dcs
        self.stubs = stubs
        self.orch_id = orch_id
        self.set_timeouts(rpc_timeout, retry_timeout)
        self._handlers: dict[ActionKind, Callable[[Any, ClusterView], tuple[bool, str]]] = {
            ActionKind.PROMOTE: self._promote,
            ActionKind.FOLLOW: self._follow,
            ActionKind.REJOIN: self._rejoin,
            ActionKind.DEMOTE_FOR_SWITCHOVER: self._demote,
            ActionKind.REVOKE_LEADER_LEASE: self._revoke,
            ActionKind.PUBLISH_SYNC: self._publish_sync,
            ActionKind.RECORD_HISTORY: self._history,
            ActionKind.CLEAR_SWITCHOVER: self._clear_switchover,
            ActionKind.SAVE_FAILOVER_STATE: self._save_state,
            ActionKind.CLEAR_FAILOVER_STATE: lambda a, v: (
                self.dcs.clear_failover_state(deadline_s=self.retry_timeout), "failover state cleared"),
            ActionKind.RESEED_KEYSPACE: self._reseed,
            ActionKind.WAIT: lambda a, v: (False, a.reason),
        }

    def set_timeouts(self, rpc_timeout: float, retry_timeout: float) -> None:
        """Deadlines of the next actions (the cluster config may change them)."""
        self.rpc_timeout = rpc_timeout
        self.retry_timeout = retry_timeout
        self.action_timeout = max(rpc_timeout, retry_timeout)

    def execute(self, action: Action, view: ClusterView) -> Outcome:
        """Run one action; never raises for etcd/agent failures."""
        try:
            changed, detail = self._handlers[action.kind](action, view)
            return Outcome(action, True, bool(changed), detail)
        except grpc.RpcError as exc:
            return Outcome(action, False, False, f"{exc.code().name}: {exc.details()}",
                           hopeless=exc.code() not in _RETRYABLE)
        except (DcsUnavailable, LeaseLost) as exc:
            return Outcome(action, False, False, str(exc))
        except _Refused as exc:
            return Outcome(action, False, False, str(exc))

    # -- agent RPCs ------------------------------------------------------------
    def _call(self, member: str, method: str, request: Any, slow: bool = False) -> node_agent_pb2.ActionReply:
        stub = self.stubs.stub(member)
        if stub is None:
            raise _Refused(f"no agent address known for {member}")
        fn = getattr(stub, method)
        total = 2 * self.action_timeout
        attempt = total if slow else self.action_timeout

        def once() -> node_agent_pb2.ActionReply:
            try:
                return fn(request, timeout=attempt)
            except grpc.RpcError as exc:
                # A refused port is a dead agent: retrying only delays the next
                # decision (e.g. a cascade: the new primary died mid-promote).
                if grpcutil.is_connection_refused(exc, self.stubs.address(member)):
                    raise _Refused(f"{member}'s agent refused the connection") from None
                raise
        return grpcutil.call_with_retry(once, total)

    def _promote(self, a: Promote, view: ClusterView) -> tuple[bool, str]:
        if a.forced:
            log_event(log, "failover.forced", logging.WARNING, member=a.member, term=a.term,
                      reason="operator forced a failover to a member not known to hold every acknowledged "
                             "write; writes it lacks are lost (see history)")
        reply = self._call(a.member, "Promote", node_agent_pb2.PromoteRequest(
            term=a.term, reason=f"orchestrator {self.orch_id}" + (" (FORCED by the operator)" if a.forced else "")))
        return reply.changed, reply.detail

    def _leader_address(self, leader: str, view: ClusterView) -> tuple[str, int]:
        if view.leader is not None and view.leader.name == leader:
            return view.leader.data_address, view.leader.timeline
        rec = view.member(leader)
        if rec is None or not rec.data_address:
            raise _Refused(f"no data address known for leader {leader}")
        return rec.data_address, rec.timeline

    def _follow(self, a: Follow, view: ClusterView) -> tuple[bool, str]:
        address, timeline = self._leader_address(a.leader, view)
        reply = self._call(a.member, "Follow", node_agent_pb2.FollowRequest(
            term=a.term, leader_name=a.leader, leader_data_address=address, leader_timeline=timeline))
        return reply.changed, reply.detail

    def _rejoin(self, a: Rejoin, view: ClusterView) -> tuple[bool, str]:
        address, _ = self._leader_address(a.leader, view)
        reply = self._call(a.member, "Rejoin", node_agent_pb2.RejoinRequest(
            term=a.term, leader_name=a.leader, leader_data_address=address, allow_reclone=True), slow=True)
        return reply.changed, reply.detail

    def _demote(self, a: DemoteForSwitchover, view: ClusterView) -> tuple[bool, str]:
        reply = self._call(a.member, "Demote", node_agent_pb2.DemoteRequest(
            term=a.term, reason=f"switchover by orchestrator {self.orch_id}"))
        return reply.changed, reply.detail

    # -- etcd writes -------------------------------------------------------------
    def _revoke(self, a: RevokeLeaderLease, view: ClusterView) -> tuple[bool, str]:
        revoked = self.dcs.revoke_leader_lease(a.expected_term, deadline_s=self.retry_timeout)
        return revoked, "leader lease revoked" if revoked else "leader key already gone or term moved on"

    def _publish_sync(self, a: PublishSync, view: ClusterView) -> tuple[bool, str]:
        record = SyncRecord(method=a.method.value, num=a.num, names=tuple(a.names), leader=a.leader, term=a.term)
        if view.sync == record:
            return False, "sync set already published"
        if not self.dcs.set_sync(record, view.sync_mod_revision, deadline_s=self.retry_timeout):
            raise _Refused("sync key changed since it was read (compare-and-swap refused)")
        return True, f"sync set {a.method.value} {a.num} {list(a.names)}"

    def _history(self, a: RecordHistory, view: ClusterView) -> tuple[bool, str]:
        self.dcs.put_history(history_record(a.entry, self.orch_id), deadline_s=self.retry_timeout)
        return True, f"history/{a.entry.term} written"

    def _reseed(self, a: ReseedKeyspace, view: ClusterView) -> tuple[bool, str]:
        sync = SyncRecord(method="first", num=1, names=(a.sync_leader,), leader=a.sync_leader,
                          term=a.term) if a.sync_leader else None
        if self.dcs.reseed(a.term, a.initialize, sync, deadline_s=self.retry_timeout):
            return True, f"keyspace re-seeded: term {a.term}, initialize {a.initialize}"
        return False, "not re-seeded: the term or leader key exists again"

    def _clear_switchover(self, a: ClearSwitchover, view: ClusterView) -> tuple[bool, str]:
        """Record the request's outcome (keyed by its ``requested_at``), then delete it."""
        req = view.switchover or {}
        if req:
            self.dcs.put(self.dcs.keys.switchover_outcome,
                         {"requested_at": req.get("requested_at", 0.0), "candidate": req.get("candidate", ""),
                          "failover": bool(req.get("failover", False)), "outcome": a.outcome.value,
                          "reason": a.reason, "at": time.time()}, deadline_s=self.retry_timeout)
        log_event(log, "operator request cleared", outcome=a.outcome.value, reason=a.reason)
        return self.dcs.clear_switchover(deadline_s=self.retry_timeout), "switchover request cleared"

    def _save_state(self, a: SaveFailoverState, view: ClusterView) -> tuple[bool, str]:
        self.dcs.put_failover_state(a.state.to_dict(), deadline_s=self.retry_timeout)
        return True, f"failover state saved ({a.state.phase.value}, term {a.state.term})"


_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.CANCELLED})


class _Refused(Exception):
    """An action that cannot run with what the view says (reported, not raised)."""
