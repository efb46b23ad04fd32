"""The agent's actions: the loop's steps (``reconcile.Step``) and the RPCs.

Every function takes the agent as an ``AgentPort`` (``port.py``: the members
it may use; ``NodeAgent`` is one) and runs under ``agent.lock``. The RPC
actions return ``(changed, detail)`` and raise ``StaleTerm`` / ``Refused`` /
``DcsUnavailable`` / engine errors, which the servicer maps to status codes.
Each is idempotent: asking for the state the node is already in returns
``changed=False``. Terms are fencing tokens: an older term is refused.
"""
from __future__ import annotations

import logging
import time

from walrus_ha.common import errors
from walrus_ha.common.errors import DcsUnavailable, LeaseLost, StaleTerm, WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn
from walrus_ha.common.records import ClusterView
from walrus_ha.node.agent import vouch
from walrus_ha.node.agent.port import AgentPort, RepointRequest, TermRequest
from walrus_ha.node.agent.reconcile import Decision
from walrus_ha.node.agent.status import AgentState
from walrus_ha.node.engine.base import Discarded, RejoinMethod, Role, Upstream

log = logging.getLogger(__name__)


class Refused(errors.Refused):
    """The request cannot be done in the node's current state (FAILED_PRECONDITION)."""


# -- loop steps -------------------------------------------------------------------------

def keep(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    s = agent.engine.status()
    if agent.held_term:
        agent.apply_sync(view)
        if agent.restarted_holding:
            unfence_after_restart(agent)
        elif agent.fenced_by_deadline:
            _reconfirm(agent)
        return
    if s.role is Role.STANDBY and view.leader is not None:
        agent.set_state(AgentState.STANDBY, d.reason)


def _reconfirm(agent: AgentPort) -> None:
    """The deadline passed but a later renewal succeeded and the view still
    shows our leader key: the lease never expired, so writes may resume."""
    snap = agent.keeper.snapshot()
    if snap is None or snap.fenced or snap.deadline <= agent.clock():
        return
    agent.engine.set_lease_deadline(snap.deadline)
    agent.engine.unfence()
    agent.fenced_by_deadline = False
    log_event(log, "leader.reconfirmed", term=agent.held_term, reason="lease renewed after a missed deadline")


def unfence_after_restart(agent: AgentPort) -> None:
    """The engine died and was restarted fenced while we hold the leader key:
    unfence in place once the lease is provably current, i.e. a renewal sent
    after the restart was confirmed and a read after it still shows our key
    under that lease. A failure leaves it fenced for the next tick; a lost
    lease or key is handled by the keeper / the next decision."""
    lease, term = agent.keeper.lease_id, agent.held_term
    try:
        deadline = agent.keeper.renew_now()
        view = agent.dcs.read_view(deadline_s=agent.config.retry_timeout)
    except (DcsUnavailable, LeaseLost) as exc:
        log_event(log, "leader.restart_unproven", logging.WARNING, term=term, error=exc)
        agent.wake()
        return
    lead = view.leader
    if lead is None or lead.name != agent.config.name or lead.term != term or view.leader_lease != lease:
        log_event(log, "leader.restart_unproven", logging.WARNING, term=term,
                  error="the leader key is no longer ours under our lease")
        agent.wake()
        return
    if deadline <= agent.clock():
        agent.wake()
        return
    agent.engine.set_lease_deadline(deadline)     # before the unfence: no ack without a deadline
    agent.engine.unfence()
    agent.restarted_holding = False
    agent.fenced_by_deadline = False
    log_event(log, "leader.restarted_in_place", term=term,
              reason="engine restarted while holding the key; lease renewed after the restart")


def wait(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    s = agent.engine.status()
    role = s.role
    if role is Role.PRIMARY and not s.fenced:
        agent.engine.fence(d.reason)
    agent.set_state(AgentState.FENCED if role is Role.PRIMARY else AgentState.WAITING, d.reason)


def bootstrap(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    """Claim ``initialize``; the winner creates timeline 1, takes term 1 and unfences."""
    me = agent.config.name
    if view.initialize != me and not agent.dcs.claim_initialize(me, deadline_s=agent.config.retry_timeout):
        log_event(log, "bootstrap.lost_race", reason="another node claimed initialize")
        agent.wake()
        return
    agent.set_state(AgentState.BOOTSTRAPPING, d.reason)
    agent.engine.bootstrap()
    agent.engine.fence("bootstrapped: leadership not proven yet")
    agent.engine.start()
    agent.engine.fence("bootstrapped: leadership not proven yet")
    _take_leadership(agent, 1, "bootstrap")


def clone(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    agent.set_state(AgentState.CLONING, d.reason)
    agent.engine.clone(d.upstream)
    agent.engine.start()
    agent.engine.follow(d.upstream, d.term)
    agent.engine.unfence()     # a standby refuses writes by role; no stale fence in its status
    agent.set_state(AgentState.STANDBY, f"cloned from {d.upstream}")


def follow_leader(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    if agent.engine.status().role is Role.STOPPED:
        if agent.engine.rejoins_stopped:
            # Its data may say "primary": the engine's rejoin starts it as a standby only.
            return rejoin_leader(agent, d, view)
        agent.engine.start()
    agent.engine.follow(d.upstream, d.term)
    agent.engine.unfence()
    agent.set_state(AgentState.STANDBY, f"following {d.upstream} at term {d.term}")


def rejoin_leader(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    agent.set_state(AgentState.REJOINING, d.reason)
    agent.engine.fence(f"rejoining {d.upstream}")
    if agent.engine.status().role is Role.STOPPED and not agent.engine.rejoins_stopped:
        agent.engine.start()
        agent.engine.fence(f"rejoining {d.upstream}")
    before = agent.engine.last_discard
    method = agent.engine.rejoin(d.upstream, d.term, allow_reclone=True)
    note_rejoin(agent, d.upstream, d.term, method, before)
    agent.engine.unfence()
    agent.set_state(AgentState.STANDBY, f"rejoined {d.upstream} ({method.value})")


def release_key(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    # The lease the key is bound to (ours, or one we lost track of): the delete
    # compares it and the term, so a key someone took since is never touched.
    lease = view.leader_lease if view.leader is not None and view.leader_lease else agent.keeper.lease_id
    agent.fence(d.reason)
    if lease is not None:
        agent.dcs.release_leader(lease, d.term, deadline_s=agent.config.retry_timeout)
    agent.wake()


def resign(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    """Holding the key with a stopped engine: fence, release the key, forget it."""
    lease, term = agent.keeper.lease_id, agent.held_term
    agent.fence(d.reason)
    agent.drop_leader(d.reason)
    if lease is not None and term:
        agent.dcs.release_leader(lease, term, deadline_s=agent.config.retry_timeout)
    agent.wake()


def leadership_lost(agent: AgentPort, d: Decision, view: ClusterView) -> None:
    agent.fence(d.reason)
    agent.drop_leader(d.reason)
    agent.wake()        # next iteration: find and rejoin the new leader


def note_rejoin(agent: AgentPort, upstream: Upstream, term: int, method: RejoinMethod, before) -> None:
    """Record what a rejoin discarded for the RPO receipt (member record
    ``discarded``): the engine reports a rewind itself (``last_discard``);
    otherwise nothing was discarded (NONE) or it is unknown (-1: re-cloned,
    or an engine that does not count what it rewound)."""
    if agent.engine.last_discard is not before:
        return
    s = agent.engine.status()
    n = 0 if method is RejoinMethod.NONE else -1
    agent.rejoin_report = Discarded(s.timeline, s.flush_lsn, s.flush_lsn, n, n, n, str(upstream), term, time.time())
    log_event(log, "rejoin.discarded", upstream=upstream, term=term, method=method.value,
              bytes="unknown" if n < 0 else 0)


# -- leadership -------------------------------------------------------------------------

def _take_leadership(agent: AgentPort, term: int, reason: str) -> None:
    """acquire_leader(expected_term=term-1), promote the engine, set the
    deadline, unfence. Raises Refused when etcd refuses; on any failure after
    the key was taken, the key is released again and the engine stays fenced."""
    t0 = agent.clock()
    lease, got = _acquire(agent, term)
    t1 = agent.clock()
    try:
        s = agent.engine.status()
        if s.role is not Role.PRIMARY or s.term < got:
            agent.engine.promote(got)
        t2 = agent.clock()
        agent.dcs.update_leader(lease, agent.leader_record(got), deadline_s=agent.config.retry_timeout)
        agent.keeper.set_holding(True)
        snap = agent.keeper.snapshot()
        if snap is None or snap.deadline <= agent.clock():
            raise LeaseLost("lease deadline passed while promoting")
        agent.engine.set_lease_deadline(snap.deadline)
    except Exception:
        _abandon(agent, got, "promotion failed")
        raise
    agent.fenced_by_deadline = False
    agent.restarted_holding = False
    agent.reapply_sync()    # before unfencing: no ack under a stale set
    agent.engine.unfence()
    log_event(log, "leader.acquired", term=got, reason=reason, acquire_ms=round((t1 - t0) * 1000, 1),
              promote_ms=round((t2 - t1) * 1000, 1), total_ms=round((agent.clock() - t0) * 1000, 1))
    agent.set_state(AgentState.PRIMARY, f"{reason}: leader at term {got}")


def _acquire(agent: AgentPort, term: int) -> tuple[int, int]:
    """Fence, renew the lease (a fresh deadline), take the leader key at ``term``.
    Returns (lease id, term); the engine stays fenced until the caller unfences."""
    lease = agent.keeper.lease_id
    if lease is None:
        raise DcsUnavailable("no etcd lease at the moment; retry")
    was_standby = agent.engine.status().role is Role.STANDBY
    agent.engine.fence(f"taking leadership at term {term}")   # no ack until the deadline is set
    try:
        agent.keeper.renew_now()
        got = agent.dcs.acquire_leader(lease, agent.leader_record(term), expected_term=term - 1,
                                       deadline_s=agent.config.retry_timeout)
        if got is None:
            raise Refused(f"cannot take the leader key at term {term}: it is held, or the term moved on")
    except WalrusError:
        if was_standby:
            agent.engine.unfence()     # a standby refuses writes by its role anyway
        raise
    finally:
        agent.epoch += 1
    agent.held_term = got
    agent.held_lease = lease
    agent.highest_term = max(agent.highest_term, got)
    agent.leader_term = got
    return lease, got


def _abandon(agent: AgentPort, term: int, reason: str) -> None:
    agent.fence(reason)
    lease = agent.keeper.lease_id
    agent.drop_leader(reason)
    if lease is not None:
        try:
            agent.dcs.release_leader(lease, term, deadline_s=agent.config.retry_timeout)
        except WalrusError as exc:
            log_event(log, "leader.release_failed", logging.WARNING, term=term, error=exc)


def _check_term(agent: AgentPort, term: int, *, allow_equal: bool) -> None:
    current = max(agent.highest_term, agent.held_term)
    if term < current or (term == current and not allow_equal):
        raise StaleTerm(f"stale term {term}, current {current}")


# -- RPC actions -----------------------------------------------------------------------

def promote(agent: AgentPort, req: TermRequest) -> tuple[bool, str]:
    """Become primary at ``req.term`` (= etcd term + 1)."""
    with agent.lock:
        agent.epoch += 1
        if agent.stopping:
            raise Refused("agent is stopping")
        if agent.held_term and agent.held_term == req.term:
            return False, f"already leader at term {req.term}"
        _check_term(agent, req.term, allow_equal=False)
        if agent.config.tags.nofailover:
            raise Refused(f"{agent.config.name} is tagged nofailover")
        if agent.held_term:
            raise Refused(f"already leader at term {agent.held_term}")
        if not agent.engine.is_initialized():
            raise Refused("data directory is not initialized")
        if agent.engine.status().role is Role.STOPPED:
            raise Refused("engine is not running")
        _take_leadership(agent, req.term, req.reason or "promote requested")
        return True, f"promoted at term {req.term}"


def demote(agent: AgentPort, req: TermRequest) -> tuple[bool, str]:
    """Switchover: fence, demote the engine, release the leader key."""
    with agent.lock:
        agent.epoch += 1
        if agent.held_term and req.term < agent.held_term:
            raise StaleTerm(f"stale term {req.term}, current {agent.held_term}")
        if req.term > max(agent.held_term, agent.highest_term):
            _require_vouched(agent, req.term, None, "demote")
        term, lease = agent.held_term, agent.keeper.lease_id
        if not term and agent.engine.status().role is not Role.PRIMARY:
            return False, "not primary"
        agent.fence(req.reason or "demote requested")
        agent.drop_leader(req.reason or "demote requested")
        agent.engine.demote(max(req.term, term))
        if term and lease is not None:
            agent.dcs.release_leader(lease, term, deadline_s=agent.config.retry_timeout)
        flush = agent.engine.status().flush_lsn
        agent.set_state(AgentState.WAITING, "demoted")
        log_event(log, "leader.demoted", term=term, flush_lsn=format_lsn(flush))
        return True, f"demoted; final flush LSN {format_lsn(flush)}"


def _repoint(agent: AgentPort, req: RepointRequest, verb: str) -> None:
    if req.upstream.name == agent.config.name:
        raise Refused(f"cannot {verb} itself")
    if agent.held_term:
        raise Refused(f"holds the leader key at term {agent.held_term}; demote first")
    _check_term(agent, req.term, allow_equal=True)
    _require_vouched(agent, req.term, req.upstream, verb)
    if not agent.engine.is_initialized():
        raise Refused("data directory is not initialized (the agent clones from the leader by itself)")


def _require_vouched(agent: AgentPort, term: int, upstream: Upstream | None, verb: str) -> None:
    """Refuse (nothing persisted) a term or upstream etcd does not vouch for (``vouch.py``)."""
    why = vouch.check(agent.view, lambda: agent.dcs.read_view(deadline_s=agent.config.retry_timeout),
                      term, upstream, verb)
    if why is not None:
        raise Refused(why)


def follow(agent: AgentPort, req: RepointRequest) -> tuple[bool, str]:
    """Stream from ``req.upstream``; a node with primary data rejoins instead."""
    with agent.lock:
        agent.epoch += 1
        _repoint(agent, req, "follow")
        s = agent.engine.status()
        if s.role is Role.STANDBY and s.upstream == str(req.upstream) and s.term >= req.term:
            return False, f"already following {req.upstream}"
        agent.highest_term = max(agent.highest_term, req.term)
        if s.role is Role.PRIMARY:
            agent.engine.fence(f"following {req.upstream}")
            before = agent.engine.last_discard
            method = agent.engine.rejoin(req.upstream, req.term, allow_reclone=True)
            note_rejoin(agent, req.upstream, req.term, method, before)
        else:
            if s.role is Role.STOPPED:
                agent.engine.start()
            agent.engine.follow(req.upstream, req.term)
            method = RejoinMethod.NONE
        agent.engine.unfence()
        agent.set_state(AgentState.STANDBY, f"follow {req.upstream} at term {req.term}")
        return True, f"following {req.upstream} ({method.value})"


def rejoin(agent: AgentPort, req: RepointRequest) -> tuple[bool, str]:
    """Rewind (or re-clone when allowed) and follow ``req.upstream``."""
    with agent.lock:
        _repoint(agent, req, "rejoin")
        agent.highest_term = max(agent.highest_term, req.term)
        agent.set_state(AgentState.REJOINING, f"rejoin {req.upstream}")
        agent.engine.fence(f"rejoining {req.upstream}")
        if agent.engine.status().role is Role.STOPPED:
            agent.engine.start()
            agent.engine.fence(f"rejoining {req.upstream}")
        before = agent.engine.last_discard
        method = agent.engine.rejoin(req.upstream, req.term, allow_reclone=req.allow_reclone)
        note_rejoin(agent, req.upstream, req.term, method, before)
        agent.engine.unfence()
        agent.set_state(AgentState.STANDBY, f"rejoined {req.upstream} ({method.value})")
        return method is not RejoinMethod.NONE, f"rejoined {req.upstream} ({method.value})"


__all__ = ["Refused", "promote", "demote", "follow", "rejoin", "Upstream"]
