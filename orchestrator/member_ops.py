"""Operator requests on one member (``Cluster.RestartMember`` /
``ReinitMember``) and the cancel of a pending switchover.

The one rule: the orchestrator checks a request against the cluster's state
(``restart_problem`` / ``reinit_problem``, pure, over one etcd view) and
then asks the member's own agent, which does the work and refuses what its
own state does not allow (role, leader key). Restarts and reinits do not go
through the decision core's actions: they change no term and no leader, so
there is nothing a successor orchestrator would have to finish (the agent
runs them to the end by itself), and the core only needs to know that a
restart is planned, which the agent reports (``restart_left_s``). They are
logged, not written to ``history/`` (one record per term).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from walrus_ha.common import grpcutil, rpcerrors
from walrus_ha.common.errors import InvalidArgument, Refused, WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger(__name__)

RESTART_SLACK_S = 120.0   # beyond the restart's own deadline: stop + start of a busy PostgreSQL
REINIT_CALL_S = 10.0      # Reinit only marks the engine; the loop re-clones


def _unknown(view: ClusterView, member: str) -> InvalidArgument | None:
    if view.member(member) is None:
        known = ", ".join(sorted(m.name for m in view.members)) or "none"
        return InvalidArgument(f"unknown member {member!r} (members: {known})")
    return None


def _in_flight(view: ClusterView) -> str:
    if view.failover:
        return "a failover or switchover is in flight"
    sw = view.switchover
    if isinstance(sw, dict) and not float(sw.get("scheduled_at", 0) or 0):
        return "a switchover or failover request is pending"
    return ""


def restart_problem(view: ClusterView, member: str, force: bool) -> WalrusError | None:
    """Why the cluster refuses a restart of ``member`` now (None: go ahead).
    The role check is the agent's (it knows its engine's role now). Pure."""
    unknown = _unknown(view, member)
    if unknown is not None:
        return unknown
    busy = _in_flight(view)
    if busy and not force:
        return Refused(f"{busy}: not restarting {member} now (--force to restart anyway)")
    return None


def reinit_problem(view: ClusterView, member: str, force: bool) -> WalrusError | None:
    """Why the cluster refuses to re-clone ``member`` now (None: go ahead):
    never the leader, only under a leader, and (without ``force``) not while
    an operation is in flight nor a member of the published synchronous set
    (its re-clone could hold commits back). Pure."""
    unknown = _unknown(view, member)
    if unknown is not None:
        return unknown
    if view.leader is None:
        return Refused(f"there is no leader to re-clone {member} from")
    if view.leader.name == member:
        return Refused(f"{member} is the primary: reinit re-clones a standby from the primary "
                       f"(switch over first: walrus ctl switchover)")
    busy = _in_flight(view)
    if busy and not force:
        return Refused(f"{busy}: not re-cloning {member} now (--force to do it anyway)")
    sync = view.sync
    if not force and sync is not None and sync.num > 0 and member in sync.names:
        return Refused(f"{member} is in the synchronous set {list(sync.names)}: re-cloning it may hold commits "
                       f"back until the set changes (--force to do it anyway)")
    return None


class MemberOps:
    """Carries a checked request to the member's agent (one short-lived channel per call)."""

    def __init__(self, dcs: Any) -> None:
        self.dcs = dcs

    def view(self) -> ClusterView:
        return self.dcs.read_view(deadline_s=self.dcs.timeout_s)

    def restart(self, member: str, role: str, pending: bool, force: bool, timeout_s: float) -> tuple[bool, str]:
        """Check, then ``NodeAgent.Restart``. Raises a ``WalrusError`` (the
        check's, or the agent's error mapped back by ``rpcerrors``)."""
        view = self.view()
        problem = restart_problem(view, member, force)
        if problem is not None:
            raise problem
        log_event(log, "operator request", kind="restart", member=member, role=role or "any", pending=pending,
                  force=force)
        req = node_agent_pb2.RestartRequest(role=role, timeout_s=timeout_s, pending=pending,
                                            reason="walrus ctl restart")
        return self._call(view, member, "Restart", req, (timeout_s or 60.0) + RESTART_SLACK_S)

    def reinit(self, member: str, force: bool) -> tuple[bool, str]:
        """Check, then ``NodeAgent.Reinit`` (returns once the re-clone is scheduled)."""
        view = self.view()
        problem = reinit_problem(view, member, force)
        if problem is not None:
            raise problem
        log_event(log, "operator request", kind="reinit", member=member, force=force)
        return self._call(view, member, "Reinit", node_agent_pb2.ReinitRequest(reason="walrus ctl reinit"),
                          REINIT_CALL_S)

    def _call(self, view: ClusterView, member: str, method: str, request: Any, deadline_s: float) -> tuple[bool, str]:
        rec = view.member(member)
        assert rec is not None                     # the checks refused unknown members
        channel = grpcutil.channel(rec.agent_address)
        try:
            reply = getattr(node_agent_pb2_grpc.NodeAgentStub(channel), method)(request, timeout=deadline_s)
        except grpc.RpcError as exc:
            raise rpcerrors.error_from_rpc(exc, f"{member}'s agent ({rec.agent_address})") from None
        finally:
            channel.close()
        return reply.changed, reply.detail

    def cancel_switchover(self) -> dict | None:
        """Delete the pending switchover/failover request and record it as
        cancelled; returns the request (None: there was none)."""
        req, _ = self.dcs.get(self.dcs.keys.switchover, deadline_s=self.dcs.timeout_s)
        if not isinstance(req, dict) or not self.dcs.clear_switchover(deadline_s=self.dcs.timeout_s):
            return None
        self.dcs.put(self.dcs.keys.switchover_outcome,
                     {"requested_at": req.get("requested_at", 0.0), "candidate": req.get("candidate", ""),
                      "failover": bool(req.get("failover", False)), "outcome": "cancelled",
                      "reason": "cancelled by the operator", "at": time.time()},
                     deadline_s=self.dcs.timeout_s)
        log_event(log, "operator request", kind="cancel switchover", candidate=req.get("candidate", "") or "(best)")
        return req


__all__ = ["MemberOps", "reinit_problem", "restart_problem"]
