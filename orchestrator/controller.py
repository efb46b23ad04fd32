"""The orchestrator's loop: read -> decide -> execute -> write.

The one rule: only the active orchestrator (``Election.is_active()``) acts,
and it re-checks that before every action; everything it knows comes from
one fresh ``observe()`` per loop (etcd view + agents' ``GetStatus``), and
every action is idempotent, so a crash at any point is finished by the next
active orchestrator from the in-flight failover state saved in etcd.

The loop runs every ``loop_wait`` and at once on an etcd watch event or an
agent status-stream event (a changed status, or a broken stream: how a
killed primary shows up within milliseconds).

``now`` given to the core is wall-clock time (``time.time``): it is stored
in etcd (history, in-flight state) and compared by a successor process, so
a per-process monotonic clock would be meaningless there. Local deadlines
(lease validity, RPC timeouts) use the monotonic clock.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from walrus_ha.common.cluster_config import MemberKind
from walrus_ha.common.dynconfig import ConfigFollower
from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView
from walrus_ha.common.status import Role
from walrus_ha.orchestrator.agents import AgentPool
from walrus_ha.orchestrator.backoff import FREE_RUNS, ActionBackoff
from walrus_ha.orchestrator.config import ENV_PREFIX
from walrus_ha.orchestrator.core.model import ActionKind, ClusterSnapshot, CoreConfig, Decision
from walrus_ha.orchestrator.core.states import InvalidTransition, State
from walrus_ha.orchestrator.election import Election
from walrus_ha.orchestrator.executor import Executor, Outcome
from walrus_ha.orchestrator.probe import AgentProbe
from walrus_ha.orchestrator.receipts import Receipts
from walrus_ha.orchestrator.snapshot import PrimaryLsnTracker, agent_addresses, build_snapshot, core_config

log = logging.getLogger(__name__)

# Repointing one standby does not depend on repointing another, nor does the
# history record: a standby that refuses Follow/Rejoin must not hold up the
# rest. Every other failed action stops the sequence (e.g. no Promote after a
# failed SaveFailoverState); the next loop decides again.
INDEPENDENT = frozenset({ActionKind.FOLLOW, ActionKind.REJOIN})
# Agent RPCs the core may ask for again and again: backed off when they do
# not help (a hopeless refusal; for Follow/Rejoin also a no-op), backoff.py.
BACKED_OFF = frozenset({ActionKind.PROMOTE, ActionKind.FOLLOW, ActionKind.REJOIN,
                        ActionKind.DEMOTE_FOR_SWITCHOVER})


@dataclass(frozen=True)
class Observation:
    """One loop's input: the etcd view, the probes and the snapshot built from them."""
    view: ClusterView
    probes: Mapping[str, AgentProbe]
    snapshot: ClusterSnapshot
    config: CoreConfig


def _describe(action: Any) -> str:
    fields = {f.name: getattr(action, f.name) for f in dataclasses.fields(action)}
    for key in ("entry", "state"):
        if key in fields:
            inner = fields.pop(key)
            fields["term"] = getattr(inner, "term", "")
    args = ",".join(f"{k}={getattr(v, 'value', v)}" for k, v in fields.items() if k != "reason")
    return f"{action.kind.value}({args})"


# A spare reads the cluster config at most this often (the active one follows every view).
SPARE_CONFIG_READ_S = 1.0


class Controller:
    """One orchestrator: election, agent clients, the loop.

    ``decide`` and ``explain`` are injected (default: the pure core) so the
    loop can be driven in tests; ``wall`` is the clock handed to the core.
    ``on_outcome`` is told every action it ran (``orchestrator.metrics``
    counts failovers from it); ``last_observation`` is the last loop's input.
    """

    def __init__(self, config: Any, dcs: Any, *, decide: Callable | None = None,
                 explain: Callable | None = None, wall: Callable[[], float] = time.time,
                 announce: Callable[[int], None] | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None, seed_config: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        if decide is None or explain is None:
            from walrus_ha.orchestrator.core.decide import decide as core_decide
            from walrus_ha.orchestrator.core.ranking import explain as core_explain
            decide, explain = decide or core_decide, explain or core_explain
        self.config = config          # the effective config: the file under the cluster ``config`` key
        self.dcs = dcs
        # ``walrus orchestrator`` seeds missing cluster keys from its file (``seed_config``).
        self.config_follower = ConfigFollower(MemberKind.ORCHESTRATOR, config, dcs, seed=seed_config,
                                              env=env, env_prefix=ENV_PREFIX)
        self._decide = decide
        self._explain = explain
        self._wall = wall
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.agents = AgentPool(config.rpc_timeout, on_event=self._wake.set)
        self.election = Election(dcs, config.id, config.ttl, on_change=self._on_election,
                                 announce=announce)
        self.executor = Executor(dcs, self.agents, config.id, rpc_timeout=config.rpc_timeout,
                                 retry_timeout=config.retry_timeout)
        self.state: State = State.STARTING
        self.last_decision: Decision | None = None
        self.last_observation: Observation | None = None
        self._on_outcome = on_outcome
        self.changed = False          # did the last tick's actions change anything
        self._tracker = PrimaryLsnTracker()
        self.backoff = ActionBackoff()
        self._receipts = Receipts(dcs, config.retry_timeout)
        self._term_floor = 0          # the highest term seen in etcd (an emptied etcd is re-seeded above it)
        self._lost_at = 0.0           # wall time etcd was first seen without a term while members had one
        self._last_logged: tuple | None = None
        self._cancel_watch: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._config_read_at = -1e18    # a spare's last read of the cluster config (monotonic)

    # -- observation (also used by the Cluster service) ------------------------
    def observe(self, watch: bool = False, pool: AgentPool | None = None) -> Observation:
        """Read etcd once, probe every agent, build the core's snapshot.

        Raises DcsUnavailable when etcd cannot be read in time.
        """
        view = self.dcs.read_view(deadline_s=self.config.retry_timeout)
        self._follow_config(view)
        pool = pool or self.agents
        addresses = agent_addresses(view)
        pool.set_members(addresses, watch=watch)
        probes = pool.probe_all(first=view.leader.name if view.leader else None)
        snapshot = build_snapshot(view, probes, self._tracker.lsn, self._tracker.leader)
        self._tracker.update(snapshot)
        lsn = self._fresher_primary_lsn(view, pool)
        snapshot = dataclasses.replace(snapshot, last_known_primary_lsn=lsn, **self._keyspace_facts(snapshot))
        return Observation(view, probes, snapshot, core_config(self.config))

    def _follow_config(self, view: ClusterView) -> None:
        """Run with the cluster ``config`` key's revision in ``view``: loop
        timings at once, the core's knobs from this observation on, the
        election ttl from its next lease (``common/dynconfig.py``)."""
        cfg = self.config_follower.update(view)
        if cfg is self.config:
            return
        self.config = cfg
        self.election.set_ttl(cfg.ttl)
        self.election.interval = cfg.loop_wait
        self.agents.rpc_timeout = cfg.rpc_timeout
        self.executor.set_timeouts(cfg.rpc_timeout, cfg.retry_timeout)
        self._receipts.deadline_s = cfg.retry_timeout

    def _keyspace_facts(self, snapshot: ClusterSnapshot) -> dict:
        """``term_floor`` and ``keyspace_lost_at`` for the core (``core.reseed``)."""
        from walrus_ha.orchestrator.core.reseed import keyspace_lost
        leader_term = snapshot.leader.term if snapshot.leader is not None else 0
        self._term_floor = max(self._term_floor, snapshot.term, leader_term)
        if not keyspace_lost(dataclasses.replace(snapshot, term_floor=self._term_floor)):
            self._lost_at = 0.0
        elif not self._lost_at:
            self._lost_at = self._wall()
            log_event(log, "keyspace lost", level=logging.ERROR, term_floor=self._term_floor,
                      reason="etcd has no term key but members report terms: etcd lost its data")
        return {"term_floor": self._term_floor, "keyspace_lost_at": self._lost_at}

    def _fresher_primary_lsn(self, view: ClusterView, pool: AgentPool) -> int:
        """The last leader's flush LSN, the freshest we know: the probe (via the
        tracker), its member record, and its status stream's last push (a dead
        primary's stream reported up to ~50 ms before it died)."""
        name = self._tracker.leader
        rec = view.member(name) if name else None
        if rec is not None and rec.role == Role.PRIMARY.value:
            self._tracker.merge((rec.term, rec.flush_lsn))
        return self._tracker.merge(pool.primary_flush(name) if name else None)

    def explain(self, obs: Observation):
        """The core's ranking for ``obs`` (who would win now and why)."""
        return self._explain(obs.snapshot, obs.config)

    # -- the loop -------------------------------------------------------------------
    def _on_election(self, active: bool) -> None:
        self.state = State.STARTING
        self._wake.set()

    def tick(self) -> Decision | None:
        """One read -> decide -> execute round; None when not active (a spare
        only follows the cluster config)."""
        if not self.election.is_active():
            now = time.monotonic()
            if now - self._config_read_at >= SPARE_CONFIG_READ_S:
                self._config_read_at = now
                self._follow_config(self.dcs.read_view(deadline_s=self.config.retry_timeout))
            return None
        obs = self.observe(watch=True)
        if not self.election.is_active():
            return None
        self.last_observation = obs
        decision = self._decide_from(obs)
        self._log_decision(decision)
        self.state = decision.state
        self.last_decision = decision
        self.changed = False
        self.backoff.keep_only(_describe(a) for a in decision.actions)
        for action in decision.actions:
            if not self.election.is_active():
                log_event(log, "stop acting", level=logging.WARNING, reason="no longer the active orchestrator")
                break
            outcome = self._execute(action, obs, decision)
            self.changed = self.changed or outcome.changed
            if not outcome.ok and action.kind not in INDEPENDENT:
                break
        if self.election.is_active():
            self._receipts.complete(obs.view)
        return decision

    def _execute(self, action: Any, obs: Observation, decision: Decision) -> Outcome:
        """Run ``action`` unless it is backing off (``backoff.py``); track whether it helped."""
        key = _describe(action)
        wait = self.backoff.wait_s(key)
        if wait > 0:
            return Outcome(action, False, False, f"backing off for {wait:.1f}s more (it kept not helping)")
        outcome = self.executor.execute(action, obs.view)
        self._log_outcome(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        if action.kind not in BACKED_OFF:
            return outcome
        unhelpful = outcome.hopeless or (outcome.ok and not outcome.changed and action.kind in INDEPENDENT)
        if unhelpful:
            changed = self.backoff.unhelpful(key)
            if changed is not None:
                runs, delay = changed
                log_event(log, "action backoff", level=logging.WARNING, action=key, runs=runs,
                          retry_in_s=round(delay, 2), last=outcome.detail or ("ok" if outcome.ok else "failed"),
                          state=decision.state.value, decision=decision.reason,
                          why="it keeps failing for a reason retrying cannot fix, or changes nothing")
        elif outcome.ok and self.backoff.helped(key) > FREE_RUNS:
            log_event(log, "action backoff cleared", action=key, detail=outcome.detail)
        return outcome

    def _decide_from(self, obs: Observation) -> Decision:
        """``decide`` from the current state; an impossible transition (e.g. the
        term key went back to 0 because etcd lost its data) restarts the state
        machine from STARTING instead of failing every later round."""
        try:
            return self._decide(obs.snapshot, obs.config, self._wall(), previous=self.state)
        except InvalidTransition as exc:
            log_event(log, "invalid transition", level=logging.ERROR, frm=self.state.value,
                      error=exc, then="restarting the state machine from starting")
            self.state = State.STARTING
            return self._decide(obs.snapshot, obs.config, self._wall(), previous=State.STARTING)

    def _log_decision(self, d: Decision) -> None:
        if d.transition is not None:
            log_event(log, "transition", frm=d.transition.frm.value, to=d.transition.to.value,
                      reason=d.transition.reason)
        key = (d.state, d.actions, d.reason)
        acting = any(a.kind is not ActionKind.WAIT for a in d.actions)
        if acting or key != self._last_logged:
            log_event(log, "decision", state=d.state.value, reason=d.reason,
                      actions=";".join(_describe(a) for a in d.actions) or "none")
        self._last_logged = key

    @staticmethod
    def _log_outcome(o: Outcome) -> None:
        if o.action.kind is ActionKind.WAIT:
            return
        level = logging.WARNING if not o.ok else logging.INFO if o.changed else logging.DEBUG
        log_event(log, "action", level=level,
                  action=_describe(o.action), ok=o.ok, changed=o.changed, detail=o.detail)

    def _loop(self) -> None:
        while not self._stop.is_set():
            acted = False
            try:
                decision = self.tick()
                acted = decision is not None and self.changed   # something moved: look again soon
                if decision is None:
                    self.agents.set_members({})
            except (DcsUnavailable, LeaseLost) as exc:
                log_event(log, "loop", level=logging.WARNING, error=exc)
            except Exception:  # the loop must survive anything; the next round re-reads
                log.exception("orchestrator loop failed")
            wait = min(self.config.loop_wait, 0.05) if acted else self.config.loop_wait
            self._wake.wait(wait)
            self._wake.clear()

    def start(self) -> None:
        """Start the election and the loop (threads); returns at once."""
        try:        # the cluster config first: the first lease's ttl and the loop's timings
            self._follow_config(self.dcs.read_view(deadline_s=self.config.retry_timeout))
        except DcsUnavailable as exc:
            log_event(log, "config.unread", level=logging.WARNING, error=exc, using="file config until etcd answers")
        self._cancel_watch = self.dcs.watch_prefix(self._wake.set)
        self.election.start(self.config.loop_wait)
        self._thread = threading.Thread(target=self._loop, name="controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and resign (revoke our lease: a spare takes over at once)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.election.resign()
        if self._cancel_watch is not None:
            self._cancel_watch()
        self.agents.close()
