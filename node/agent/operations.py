"""Operator requests on one member: a planned engine restart and a reinit.

The one rule: neither gives up the leader key. A restart stops and starts
the engine in place under ``agent.lock`` while the lease keeper keeps
renewing; the engine comes back fenced and is unfenced only by a renewal
sent after it (``actions.unfence_after_restart``, design.md safety 7). Until
``restart_deadline`` the agent reports the restart (``restart_left_s``), and
the orchestrator's core treats it as a planned outage; after it, the normal
rules apply again. A reinit only marks the engine for a re-clone
(``Engine.request_reclone``); the loop's own REJOIN step re-clones it.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from walrus_ha.common.log import log_event
from walrus_ha.node.agent import actions
from walrus_ha.node.agent.port import AgentPort
from walrus_ha.node.agent.status import AgentState
from walrus_ha.node.engine.base import Role

log = logging.getLogger(__name__)


class RestartRole(enum.Enum):
    """Which role a restart applies to (``walrus ctl restart --role``)."""
    ANY = "any"
    PRIMARY = "primary"
    REPLICA = "replica"

    @classmethod
    def parse(cls, text: str) -> RestartRole:
        """"" is ANY; "standby" is REPLICA. Raises ValueError for anything else."""
        word = (text or "any").strip().lower()
        return cls.REPLICA if word == "standby" else cls(word)


@dataclass(frozen=True)
class RestartRequest:
    role: RestartRole = RestartRole.ANY
    timeout_s: float = 0.0       # 0: 2 x ttl
    reason: str = ""
    pending: bool = False        # only if a setting waits for a restart


def role_problem(want: RestartRole, role: Role, holds_leader: bool) -> str | None:
    """Why a restart limited to ``want`` does not apply to a member whose
    engine is ``role`` (None: it applies). Pure."""
    if role is Role.STOPPED:
        return "the engine is not running; the agent starts it by itself"
    primary = role is Role.PRIMARY or holds_leader
    if want is RestartRole.PRIMARY and not primary:
        return f"--role primary, but the engine is {role.value}"
    if want is RestartRole.REPLICA and primary:
        return "--role replica, but this member is the primary"
    return None


def restart(agent: AgentPort, req: RestartRequest) -> tuple[bool, str]:
    """Stop and start the engine in place. Raises ``actions.Refused`` when the
    role does not match or the agent is stopping; an engine error (start
    failed) propagates, the deadline stays, and the loop retries the start."""
    with agent.lock:
        if agent.stopping:
            raise actions.Refused("the agent is stopping")
        s = agent.engine.status()
        problem = role_problem(req.role, s.role, bool(agent.held_term))
        if problem is not None:
            raise actions.Refused(problem)
        if req.pending and not agent.engine.restart_pending():
            return False, "no setting waits for a restart (--pending)"
        timeout = req.timeout_s or 2 * agent.config.ttl
        t0 = agent.clock()
        agent.restart_deadline = t0 + timeout
        previous = agent.state
        why = f"planned restart{': ' + req.reason if req.reason else ''}"
        agent.set_state(AgentState.RESTARTING, why)
        log_event(log, "restart.begin", role=s.role.value, holding_term=agent.held_term, deadline_s=timeout,
                  reason=req.reason)
        agent.fence(why)                          # no acknowledgement from here until unfenced
        try:
            agent.engine.stop()
            agent.engine.set_lease_deadline(agent.clock())
            agent.engine.start()
        except Exception as exc:                  # the loop retries the start (restart_failing_since)
            agent.set_state(previous, f"restart failed: {exc}")
            agent.wake()
            raise
        agent.engine.fence("restarted: leadership not proven")
        took = agent.clock() - t0
        if agent.held_term:
            agent.restarted_holding = True
            actions.unfence_after_restart(agent)  # else the loop's next KEEP does it
        agent.restart_deadline = None
        agent.set_state(previous, f"restarted in {took:.2f}s")
        agent.wake()
        fenced = agent.engine.status().fenced
        log_event(log, "restart.done", took_s=round(took, 3), fenced=fenced)
        return True, (f"engine restarted in {took:.2f}s" + (" (still fenced: unfenced by the next lease renewal)"
                                                             if fenced and agent.held_term else ""))


def reinit(agent: AgentPort, reason: str) -> tuple[bool, str]:
    """Mark this standby's engine for a re-clone from the leader; the loop's
    REJOIN step (or the orchestrator's Rejoin) carries it out. Refused on the
    leader and while no other member leads."""
    with agent.lock:
        if agent.held_term or agent.engine.status().role is Role.PRIMARY:
            raise actions.Refused("this member is the primary: reinit re-clones a standby from the primary "
                                  "(switch over first)")
        view = agent.view
        if view is None or view.leader is None or view.leader.name == agent.config.name:
            raise actions.Refused("no other member leads: nothing to re-clone from")
        agent.engine.request_reclone(f"reinit requested{': ' + reason if reason else ''}")
        agent.wake()
        return True, f"re-clone from {view.leader.name} scheduled"


__all__ = ["RestartRequest", "RestartRole", "reinit", "restart", "role_problem"]
