"""The node agent's life cycle: one engine, one etcd lease, one loop.

The one rule (docs/design.md, safety 2 and 7): the engine accepts writes only
while this agent holds the leader key under its live lease; it is fenced
before the lease can expire (``leader.LeaseKeeper``), when the lease is
lost, when the leader key is seen gone, on Demote and on shutdown. A node
whose data says "primary" starts fenced and is unfenced only by Promote (or
by bootstrapping a new cluster).

Threads: the loop (``_loop``: read the view, ``reconcile.decide``, act,
publish the member record), the lease keeper, a status poller feeding
``wait_status``, and gRPC handler threads calling the actions (``actions``).
Every engine role change runs under ``self.lock``.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping

from walrus_ha.common.cluster_config import MemberKind
from walrus_ha.common.dcs import Dcs
from walrus_ha.common.dynconfig import ConfigFollower
from walrus_ha.common.errors import DcsUnavailable, LeaseLost, NeedsReclone, WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord
from walrus_ha.node.agent import actions, clusterconf, probes, reconcile
from walrus_ha.node.agent.leader import LeaseKeeper
from walrus_ha.node.agent.probes import MemberFacts
from walrus_ha.node.agent.reconcile import Decision, Facts, LeaderFacts, Step
from walrus_ha.node.agent.status import AgentState, AgentStatus
from walrus_ha.node.config import ENV_PREFIX, NodeConfig
from walrus_ha.node.engine.base import Discarded, Engine, Role, SyncMethod, SyncSpec

log = logging.getLogger(__name__)

STATUS_POLL_S = 0.05
_DATA_ROLES = ("primary", "standby")     # member roles (common.status.Role values) that hold data
# A synchronous set no standby can satisfy: a new leader waits under it for its own set.
PENDING_SYNC_SPEC = SyncSpec(SyncMethod.FIRST, 1, ("walrus_pending_sync_set",))


class NodeAgent:
    """Runs one node: ``start()``, then ``stop()`` (idempotent).

    ``engine`` and ``dcs`` may be injected (tests); by default they are built
    from ``config``. The loop's steps and the RPC actions (``promote``,
    ``demote``, ``follow``, ``rejoin``) live in ``node.agent.actions`` and take
    the agent as a ``port.AgentPort``: the public members below.
    """

    def __init__(self, config: NodeConfig, engine: Engine | None = None, dcs: Dcs | None = None,
                 clock: Callable[[], float] = time.monotonic, env: Mapping[str, str] | None = None):
        if engine is None:
            from walrus_ha.node.engine import create_engine
            engine = create_engine(config)
        self.config = config        # effective: the file under the cluster ``config`` key (clusterconf)
        self.engine = engine
        self.dcs = dcs or Dcs(config.etcd.endpoints, config.cluster, config.etcd.timeout_s)
        self.config_follower = ConfigFollower(MemberKind.NODE, config, self.dcs, env=env, env_prefix=ENV_PREFIX)
        self.agent_pending: tuple[str, ...] = ()     # file keys a reload could not apply live
        self.reload_source: Callable[[], NodeConfig] | None = None   # re-reads the file (``walrus node``)
        self.clock = clock
        self.lock = threading.RLock()           # serialises role changes
        self.state = AgentState.STARTING
        self.held_term = 0                      # term of the leader key we hold (0: none)
        self.held_lease: int | None = None      # the lease that key is bound to
        self.highest_term = 0
        self.leader_term = 0                    # term of the leader key last seen
        self.fenced_by_deadline = False
        self.restarted_holding = False          # engine restarted fenced while we hold the key
        self._restart_failing_since: float | None = None
        self.restart_deadline: float | None = None    # a planned restart's deadline (``operations``)
        self.epoch = 0                          # bumped by every leadership / role action
        self.view: ClusterView | None = None
        self.keeper = LeaseKeeper(self.dcs, config.ttl, config.safety_margin, clock=clock,
                                  on_renewed=self._on_renewed, on_deadline=self._on_deadline,
                                  on_lost=self._on_lost)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._status_cond = threading.Condition()
        self._status: AgentStatus | None = None
        self._status_version = 0
        self._published: tuple | None = None
        self._published_at = 0.0
        self._applied_sync: SyncSpec | None = None
        self._last_decision: tuple | None = None
        self.rejoin_report: Discarded | None = None   # a rejoin that discarded nothing / re-cloned
        self._foreign_key: tuple[int, int, float] | None = None   # (term, lease, first seen) of a key
                                                                   # naming us under a lease not ours
        self._empty_keyspace_since: float | None = None   # an empty node's first look at an empty keyspace
        self._cancel_watch: Callable[[], None] | None = None
        self.loop_beat = clock()                # when the loop last began an iteration (liveness)
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        """Grant the lease, start the loop and the keeper. Returns at once; the
        engine is bootstrapped / cloned / started by the loop."""
        if self.engine.is_initialized():       # an empty data dir has nothing to fence yet
            self.fence("agent starting: leadership not proven")
        try:        # the cluster config first: the first lease's ttl, the engine's parameters
            clusterconf.follow(self, self.dcs.read_view(deadline_s=self.config.retry_timeout))
        except DcsUnavailable as exc:
            log_event(log, "config.unread", logging.WARNING, error=exc, using="file config until etcd answers")
        self._ensure_lease()
        self.keeper.start()
        self._cancel_watch = self.dcs.watch_prefix(self._wake.set)
        for target, name in ((self._loop, "agent-loop"), (self._poll_status, "status-poller")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self._started = True

    def stop(self) -> None:
        """Fence, release the leader key (so failover is immediate), stop the
        engine, revoke the lease. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self.set_state(AgentState.STOPPING, "stop requested")
        self.fence("agent stopping")
        for t in self._threads:
            t.join(timeout=30)
        with self.lock:
            self.fence("agent stopping")       # again: an RPC may have run meanwhile
            term, lease = self.held_term, self.keeper.lease_id
            self.drop_leader("agent stopping")
            if term and lease is not None:
                self._quietly("release_leader", lambda: self.dcs.release_leader(lease, term))
            self._quietly("engine.stop", self.engine.stop)
            self.keeper.stop()
            if self._cancel_watch is not None:
                self._cancel_watch()
            if lease is not None:
                self._quietly("revoke_lease", lambda: self.dcs.revoke_lease(lease))
            self.set_state(AgentState.STOPPED, "stopped")
        self.dcs.close()

    def _quietly(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except (WalrusError, OSError) as exc:
            log_event(log, "stop.step_failed", logging.WARNING, step=what, error=exc)

    # -- lease callbacks (keeper thread) -------------------------------------------
    def _on_renewed(self, deadline: float) -> None:
        self.engine.set_lease_deadline(deadline)
        if self.fenced_by_deadline:
            self._wake.set()        # the loop re-checks the view and may unfence

    def _on_deadline(self, reason: str) -> None:
        self.fenced_by_deadline = True
        self.fence(f"lease deadline passed: {reason}")
        self._wake.set()

    def _on_lost(self, reason: str) -> None:
        if self._held_lease_tracked():
            # A late notice about an older lease (e.g. the keeper waited for the lock
            # while a Promote took the key under the lease granted since): the lease
            # we hold the key under is the one being renewed; nothing to fence.
            log_event(log, "lease.lost_ignored", logging.WARNING, reason=reason, term=self.held_term)
            return
        if self.held_term or self._engine_role() is Role.PRIMARY:
            self.fence(f"lease lost: {reason}")      # first, before waiting for the lock
        with self.lock:
            if self.held_term and not self._held_lease_tracked():
                self.drop_leader(f"lease lost: {reason}")
        self._wake.set()

    def _held_lease_tracked(self) -> bool:
        """We hold the leader key under the lease the keeper still renews."""
        return bool(self.held_term) and self.held_lease is not None and self.keeper.lease_id == self.held_lease

    def _engine_role(self) -> Role:
        try:
            return self.engine.status().role
        except Exception:            # unknown: assume the worst
            return Role.PRIMARY

    def fence(self, reason: str) -> None:
        """Fence the engine; never raises (a failure is logged)."""
        try:
            self.engine.fence(reason)
        except Exception as exc:     # fencing must never kill the caller's thread
            log_event(log, "fence.failed", logging.ERROR, reason=reason, error=repr(exc))

    def drop_leader(self, reason: str) -> None:
        """Forget the leader role (engine already fenced)."""
        self.epoch += 1
        if self.held_term:
            log_event(log, "leader.dropped", logging.WARNING, term=self.held_term, reason=reason)
        self.held_term = 0
        self.held_lease = None
        self.restarted_holding = False
        self.keeper.set_holding(False)
        self.engine.set_lease_deadline(self.clock())
        if self.state is AgentState.PRIMARY:
            self.set_state(AgentState.FENCED, reason)

    def _ensure_lease(self) -> bool:
        """Grant a new lease if we have none; re-publish the member key under it."""
        if self.keeper.lease_id is not None:
            return True
        sent, ttl = self.clock(), self.config.ttl
        try:
            lease = self.dcs.grant_lease(ttl, deadline_s=self.config.retry_timeout)
        except DcsUnavailable as exc:
            log_event(log, "lease.grant_failed", logging.WARNING, error=exc)
            return False
        self.keeper.reset(lease, sent, ttl=ttl)
        self._published = None
        log_event(log, "lease.granted", lease=f"{lease:x}", ttl=self.config.ttl)
        return True

    # -- the loop ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self.loop_beat = self.clock()
            try:
                self._tick()
            except Exception:            # the loop must survive anything; log it loudly
                log.exception("agent loop iteration failed")
            self._wake.wait(self.config.loop_wait)
            self._wake.clear()

    def _tick(self) -> None:
        if not self._ensure_lease():
            return
        epoch = self.epoch
        try:
            view = self.dcs.read_view(deadline_s=self.config.retry_timeout)
        except DcsUnavailable as exc:
            log_event(log, "view.unavailable", logging.WARNING, error=exc)
            return
        with self.lock:
            clusterconf.follow(self, view)
            if self._stop.is_set():
                return
            if epoch != self.epoch:         # an action ran since the read: the view may predate it
                self._wake.set()
                return
            self._observe(view)
            if not self._rejoin_will_start(view) and not self._start_engine_fenced():
                return                      # a restart under our key failed: retry next tick
            facts = self._facts(view)
            if (facts.held_term and facts.initialized and facts.role is Role.STOPPED
                    and self._restart_failing_since is None):
                self._wake.set()            # died after the check above: restart it first, not RESIGN
                return
            decision = reconcile.decide(facts)
            self._act(decision, view)
        self._publish()

    def _observe(self, view: ClusterView) -> None:
        self.view = view
        self.leader_term = view.leader.term if view.leader else 0
        self.highest_term = max(self.highest_term, view.term, self.leader_term)

    def _rejoin_will_start(self, view: ClusterView) -> bool:
        """Leave a stopped engine stopped when another member leads (at a term not
        older than seen) and the engine's rejoin takes a stopped node: the
        decision is then FOLLOW and the rejoin starts it as a standby (no start
        as a fenced primary, whose crash recovery would also diverge it)."""
        lead = view.leader
        return (self.engine.rejoins_stopped and not self.held_term and lead is not None
                and lead.name != self.config.name and lead.term >= self.highest_term
                and self.engine.is_initialized() and self.engine.status().role is Role.STOPPED)

    def _start_engine_fenced(self) -> bool:
        """Start an initialized engine that is not running, fenced: its data may
        say "primary" and only Promote or a won bootstrap may unfence it.
        False: a restart under our leader key failed; retry at the next tick
        (no decision now). After failing for longer than ttl it returns True
        with the engine stopped, and the decision is RESIGN (failover)."""
        if self.engine.status().role is not Role.STOPPED or not self.engine.is_initialized():
            self._restart_failing_since = None
            return True
        self.engine.fence("starting: leadership not proven")
        self.engine.set_lease_deadline(self.clock())
        try:
            self.engine.start()
        except WalrusError as exc:
            if not self.held_term:
                raise
            now = self.clock()
            if self._restart_failing_since is None:
                self._restart_failing_since = now
            # a planned restart (``operations.restart``) keeps the key until its deadline
            give_up = now - self._restart_failing_since > self.config.ttl and now >= (self.restart_deadline or 0)
            log_event(log, "engine.restart_failed", logging.ERROR, term=self.held_term, error=exc,
                      action="resign" if give_up else "retry")
            return give_up
        self._restart_failing_since = None
        self.engine.fence("starting: leadership not proven")
        if self.held_term:
            # The engine died under us (postmaster killed alone) and came back
            # fenced: KEEP unfences it once a renewal sent after this restart is
            # confirmed (actions.unfence_after_restart).
            self.restarted_holding = True
        log_event(log, "engine.started", role=self.engine.status().role.value, fenced=True,
                  holding_term=self.held_term)
        return True

    def _facts(self, view: ClusterView) -> Facts:
        s = self.engine.status()
        lead = view.leader
        return Facts(
            me=self.config.name, initialized=self.engine.is_initialized(), role=s.role,
            upstream=s.upstream, engine_term=s.term, needs_reclone=s.needs_reclone,
            held_term=self.held_term,
            leader=LeaderFacts(lead.name, lead.term, lead.data_address, lead.timeline) if lead else None,
            highest_term=self.highest_term, initialize_claimed_by=view.initialize,
            leader_lease_is_ours=bool(lead) and view.leader_lease == self.keeper.lease_id,
            foreign_lease_overdue=self._foreign_lease_overdue(view),
            members_with_data=tuple(m.name for m in view.members if m.name != self.config.name
                                    and (m.term > 0 or m.highest_term > 0 or m.role in _DATA_ROLES)),
            bootstrap_wait_left_s=self._bootstrap_wait_left(view))

    def _bootstrap_wait_left(self, view: ClusterView) -> float:
        """How much longer this node, with an empty data dir, must watch an
        empty keyspace (no leader, no ``initialize``) before it may bootstrap:
        after an etcd wipe the members holding data re-register within that
        time, and a bootstrap would start a second cluster beside theirs."""
        if self.engine.is_initialized() or view.leader is not None or view.initialize is not None:
            self._empty_keyspace_since = None
            return 0.0
        now = self.clock()
        if self._empty_keyspace_since is None:
            self._empty_keyspace_since = now
        return max(0.0, self._empty_keyspace_since + self.config.bootstrap_wait_s - now)

    def _foreign_lease_overdue(self, view: ClusterView) -> bool:
        """The leader key names us under a lease that is not ours, and has done
        so (same term, same lease) for longer than two ttls: nobody should be
        renewing that lease, yet it lives, so waiting for it cannot end."""
        lead = view.leader
        if lead is None or lead.name != self.config.name or view.leader_lease == self.keeper.lease_id:
            self._foreign_key = None
            return False
        now = self.clock()
        if self._foreign_key is None or self._foreign_key[:2] != (lead.term, view.leader_lease):
            self._foreign_key = (lead.term, view.leader_lease, now)
        return now - self._foreign_key[2] > 2 * self.config.ttl

    def _act(self, d: Decision, view: ClusterView) -> None:
        if d.step is not Step.KEEP and (d.step, d.reason) != self._last_decision:
            log_event(log, "decision", step=d.step.value, reason=d.reason, state=self.state.value)
        self._last_decision = (d.step, d.reason)
        handler = {
            Step.KEEP: actions.keep, Step.BOOTSTRAP: actions.bootstrap, Step.CLONE: actions.clone,
            Step.WAIT_FOR_LEADER: actions.wait, Step.WAIT_FOR_EXPIRY: actions.wait,
            Step.FOLLOW: actions.follow_leader, Step.REJOIN: actions.rejoin_leader,
            Step.LEADERSHIP_LOST: actions.leadership_lost, Step.RELEASE_KEY: actions.release_key,
            Step.RESIGN: actions.resign,
        }[d.step]
        try:
            handler(self, d, view)
        except WalrusError as exc:
            log_event(log, "action.failed", logging.WARNING, step=d.step.value, error=exc)
            if isinstance(exc, NeedsReclone) and d.step is Step.FOLLOW and d.upstream is not None:
                actions.rejoin_leader(self, d, view)

    def apply_sync(self, view: ClusterView) -> None:
        """While primary: apply the published ``sync`` record when it is ours."""
        rec = view.sync
        if rec is not None and rec.leader == self.config.name and rec.term == self.held_term:
            spec = SyncSpec(SyncMethod(rec.method), rec.num, tuple(rec.names))
        elif self.held_term and rec is not None and rec.num > 0 and rec.names:
            # Synchronous mode, but our own set is not published yet: acknowledge
            # nothing until it is. The orchestrator relies on it (a leader that dies
            # before its set appears acknowledged no write; see ranking.promoted_bound).
            spec = PENDING_SYNC_SPEC
        elif self._applied_sync is not None:
            spec = SyncSpec.parse(self.config.embedded.synchronous_standby_names)
        else:
            return
        if spec != self._applied_sync:
            self.engine.set_sync_standbys(spec)
            self._applied_sync = spec
            log_event(log, "sync.applied", standbys=spec.render() or "async", term=self.held_term)

    def reapply_sync(self) -> None:
        """Forget the applied set and apply the last view's afresh (a new term:
        no ack under a set applied for an older one)."""
        self._applied_sync = None
        if self.view is not None:
            self.apply_sync(self.view)

    # -- status ----------------------------------------------------------------------
    def set_state(self, state: AgentState, reason: str) -> None:
        """Move to ``state``; a change is logged as a transition and refreshes the status."""
        if state is not self.state:
            log_event(log, "transition", frm=self.state.value, to=state.value, reason=reason)
            self.state = state
            self._refresh_status()

    def status(self) -> AgentStatus:
        """The current status (engine status read now)."""
        snap = self.keeper.snapshot()
        c = self.config
        return AgentStatus(
            name=c.name, cluster=c.cluster, agent_address=c.agent_address, data_address=c.data_address,
            engine=self.engine.status(), holds_leader=self.held_term > 0,
            leader_term=self.leader_term,
            lease_remaining_s=snap.remaining(self.clock()) if snap is not None else 0.0,
            tags={"nofailover": str(c.tags.nofailover).lower(), "priority": str(c.tags.priority)},
            state=self.state, restart_left_s=max(0.0, (self.restart_deadline or 0) - self.clock()),
            config_revision=self.config_follower.revision,
            pending_restart=clusterconf.pending_restart(self))

    def _refresh_status(self) -> None:
        try:
            s = self.status()
        except Exception:          # engine mid-restart: keep the last status
            return
        key = _significant(s)
        with self._status_cond:
            if self._status is None or _significant(self._status) != key or s.engine != self._status.engine:
                significant = self._status is None or _significant(self._status) != key
                self._status = s
                self._status_version += 1
                self._status_cond.notify_all()
                if significant:
                    self._wake.set()

    def _poll_status(self) -> None:
        while not self._stop.wait(STATUS_POLL_S):
            self._refresh_status()

    def wait_status(self, after_version: int, timeout: float) -> tuple[int, AgentStatus]:
        """Block until the status version passes ``after_version`` (or timeout);
        returns (version, status)."""
        with self._status_cond:
            self._status_cond.wait_for(lambda: self._status_version > after_version or self._stop.is_set(),
                                       timeout)
            if self._status is None:
                self._status = self.status()
            return self._status_version, self._status

    def last_status(self) -> AgentStatus | None:
        """The status the poller last published (None before the first): no engine call."""
        return self._status

    def probe_facts(self) -> MemberFacts:
        """What the HTTP API and the role-aware gRPC health judge (``probes``):
        the last published status, with leadership and lease read now. Never
        waits on the engine or etcd. The lease counts as valid while the key we
        hold is bound to the lease the keeper renews and its fencing deadline
        (``safety_margin`` before expiry) has not passed."""
        now = self.clock()
        snap = self.keeper.snapshot()
        lease_valid = (self._held_lease_tracked() and snap is not None
                       and snap.remaining(now) > self.config.safety_margin)
        return probes.facts_from(self._status, self.view, holds_leader=self.held_term > 0, lease_valid=lease_valid,
                                 loop_age_s=now - self.loop_beat, loop_limit_s=2 * self.config.ttl,
                                 stopping=self.stopping)

    def _publish(self) -> None:
        lease = self.keeper.lease_id
        if lease is None:
            return
        s = self.status()
        e = s.engine
        rec = MemberRecord(
            name=s.name, agent_address=s.agent_address, data_address=s.data_address,
            role=e.role.value, timeline=e.timeline, term=e.term, write_lsn=e.write_lsn,
            flush_lsn=e.flush_lsn, replay_lsn=e.replay_lsn, receive_lsn=e.receive_lsn,
            streaming=e.streaming, fenced=e.fenced, upstream=e.upstream, needs_reclone=e.needs_reclone,
            tags={"nofailover": self.config.tags.nofailover, "priority": self.config.tags.priority},
            engine=e.engine or self.engine.kind, version=s.version, updated_at=time.time(),
            highest_term=max(self.highest_term, self.held_term, e.term), discarded=self._discarded(),
            api_url=self.config.api_url, config_revision=s.config_revision, pending_restart=s.pending_restart)
        key = rec.to_json().replace(f'"updated_at":{rec.updated_at!r}', "")
        now = self.clock()
        if key == self._published and now - self._published_at < self.config.loop_wait:
            return
        try:
            self.dcs.put_member(lease, rec, deadline_s=self.config.retry_timeout)
            self._published, self._published_at = key, now
        except LeaseLost as exc:
            if self.keeper.lease_id == lease:
                self.keeper.reset(None)         # first: _on_lost checks which lease is tracked
            self._on_lost(str(exc))
        except DcsUnavailable as exc:
            log_event(log, "member.publish_failed", logging.WARNING, error=exc)

    def _discarded(self) -> dict:
        """The newest report of what a rejoin discarded (engine rewind or agent note)."""
        reports = [r for r in (self.engine.last_discard, self.rejoin_report) if r is not None]
        return dataclasses.asdict(max(reports, key=lambda r: r.at)) if reports else {}

    def leader_record(self, term: int) -> LeaderRecord:
        s = self.engine.status()
        return LeaderRecord(name=self.config.name, term=term, timeline=s.timeline,
                            agent_address=self.config.agent_address,
                            data_address=self.config.data_address, since=time.time())

    def wake(self) -> None:
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


def _significant(s: AgentStatus) -> tuple:
    e = s.engine
    return (e.role, e.timeline, e.term, e.streaming, e.fenced, e.upstream, e.needs_reclone,
            s.holds_leader, s.leader_term, s.state, e.sync_standbys, s.restart_left_s > 0,
            s.config_revision, s.pending_restart)
