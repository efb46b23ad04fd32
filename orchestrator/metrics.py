"""The orchestrator's Prometheus metrics (``metrics_listen``, ``GET /metrics``).

The one rule: a scrape reads what the controller already holds (election
flag, state, last observation, the last failover it knows); nothing here
calls etcd or an agent, and the decision core knows nothing of it (the
controller reports each executed action through ``on_outcome``).
``families`` is pure over plain values. Every series carries ``cluster``
and ``orchestrator`` (its id).

* ``walrus_orchestrator_active`` (1 while this one holds the election),
  ``walrus_orchestrator_state``{state} (state set: the core's ``State``
  values, or ``spare``), ``walrus_orchestrator_members``{role} (members per
  role in the active one's last observation), ``walrus_orchestrator_members_reachable``
* ``walrus_failovers_total``, ``walrus_switchovers_total``: history records
  this process wrote (counters start at 0 with the process; use
  ``increase()`` summed over the orchestrators)
* ``walrus_orchestrator_actions_total``{action, ok} (not ``wait``)
* the last failover (the newest ``history/<term>`` of kind failover this
  process wrote, or read from etcd at start): ``walrus_last_failover_rto_seconds``
  (from the core's decision to fail over to the new leader's promotion
  confirmed: detection of the loss and the ttl wait before it are not in
  it), ``walrus_last_failover_bytes_possibly_lost`` (the receipt: last
  acknowledged primary flush LSN minus the promoted LSN, a lower bound),
  ``walrus_last_failover_{last_primary,promoted}_lsn``,
  ``walrus_last_failover_term``, ``walrus_last_failover_timestamp_seconds``
* ``walrus_rpc_errors_total``{method, code} of the Cluster service
  (``common.metrics.RpcErrors``)
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric

from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event
from walrus_ha.common.metrics import CallbackCollector, Gauges, RpcErrors
from walrus_ha.common.status import Role
from walrus_ha.orchestrator.core.model import ActionKind, ClusterSnapshot, OperationKind, RecordHistory
from walrus_ha.orchestrator.core.states import State
from walrus_ha.orchestrator.executor import Outcome

log = logging.getLogger(__name__)

SPARE = "spare"


@dataclass(frozen=True)
class LastFailover:
    """The receipt of one failover (from a ``HistoryEntry`` or a stored ``HistoryRecord``)."""
    term: int
    rto_s: float
    last_primary_lsn: int
    promoted_lsn: int
    bytes_possibly_lost: int
    finished_at: float

    @classmethod
    def of(cls, entry: Any) -> LastFailover | None:
        """From anything with a history entry's fields; None unless a failover."""
        if getattr(entry.kind, "value", entry.kind) != OperationKind.FAILOVER.value:
            return None
        return cls(term=entry.term, rto_s=max(0.0, entry.finished_at - entry.started_at),
                   last_primary_lsn=entry.last_primary_lsn, promoted_lsn=entry.promoted_lsn,
                   bytes_possibly_lost=entry.bytes_possibly_lost, finished_at=entry.finished_at)


def families(*, cluster: str, orchestrator: str, active: bool, state: State,
             snapshot: ClusterSnapshot | None, last: LastFailover | None) -> list[Metric]:
    """The gauge families of one scrape (pure). ``snapshot`` is only counted while active."""
    g = Gauges("walrus_", {"cluster": cluster, "orchestrator": orchestrator})
    g.add("orchestrator_active", "1 while this orchestrator holds the election", active)
    g.enum("orchestrator_state", "Decision state of the active orchestrator (spare: not active)", "state",
           state.value if active else SPARE, [*(s.value for s in State), SPARE])
    if active and snapshot is not None:
        for role in Role:
            g.add("orchestrator_members", "Members per role in the last observation",
                  sum(1 for m in snapshot.members if m.role is role), role=role.value)
        g.add("orchestrator_members_reachable", "Members whose agent answered in the last observation",
              sum(1 for m in snapshot.members if m.reachable and m.agent_up))
        g.add("orchestrator_term", "Cluster term in the last observation", snapshot.term)
    if last is not None:
        g.add("last_failover_rto_seconds", "Last failover: decision to fail over -> new leader promoted", last.rto_s)
        g.add("last_failover_bytes_possibly_lost",
              "Last failover's receipt: last acknowledged primary flush LSN minus the promoted LSN (lower bound)",
              last.bytes_possibly_lost)
        g.add("last_failover_last_primary_lsn", "Last failover: the old primary's last known flush LSN",
              last.last_primary_lsn)
        g.add("last_failover_promoted_lsn", "Last failover: the promoted member's flush LSN", last.promoted_lsn)
        g.add("last_failover_term", "Last failover: the new leader's term", last.term)
        g.add("last_failover_timestamp_seconds", "Last failover: when it finished (unix time)", last.finished_at)
    return g.families()


class OrchestratorMetrics:
    """The registry of one orchestrator process. ``on_outcome`` goes to the
    ``Controller``; ``attach(controller)`` before the first scrape;
    ``interceptor`` goes on the Cluster gRPC server."""

    def __init__(self, cluster: str, orchestrator: str) -> None:
        self.cluster, self.orchestrator = cluster, orchestrator
        labels = {"cluster": cluster, "orchestrator": orchestrator}
        self.registry = CollectorRegistry(auto_describe=False)
        names = list(labels)
        self.failovers = Counter("walrus_failovers", "Failovers this orchestrator recorded", names,
                                 registry=self.registry).labels(**labels)
        self.switchovers = Counter("walrus_switchovers", "Switchovers this orchestrator recorded", names,
                                   registry=self.registry).labels(**labels)
        self.actions = Counter("walrus_orchestrator_actions", "Actions executed, by kind and success",
                               [*names, "action", "ok"], registry=self.registry)
        self.interceptor = RpcErrors(self.registry, labels)
        self.last: LastFailover | None = None
        self._lock = threading.Lock()
        self._controller: Any = None
        self.registry.register(CallbackCollector(self._collect))  # type: ignore[arg-type]

    def attach(self, controller: Any) -> None:
        self._controller = controller

    def on_outcome(self, outcome: Outcome) -> None:
        """Count an executed action; a written history record updates the counters and the last failover."""
        action = outcome.action
        if action.kind is ActionKind.WAIT:
            return
        self.actions.labels(self.cluster, self.orchestrator, action.kind.value, str(outcome.ok).lower()).inc()
        if not isinstance(action, RecordHistory) or not outcome.ok:
            return
        entry = action.entry
        (self.failovers if entry.kind is OperationKind.FAILOVER else self.switchovers).inc()
        self.seed([entry])

    def seed(self, history: Iterable[Any]) -> None:
        """Keep the newest failover among ``history`` (entries or records) and the one known."""
        with self._lock:
            for entry in history:
                last = LastFailover.of(entry)
                if last is not None and (self.last is None or last.term >= self.last.term):
                    self.last = last

    def seed_from_etcd(self, dcs: Any, deadline_s: float) -> None:
        """One read of the newest history records (a new process shows the
        last failover before it makes one). etcd trouble: logged, skipped."""
        try:
            self.seed(dcs.list_history(20, deadline_s=deadline_s))
        except (DcsUnavailable, LeaseLost) as exc:
            log_event(log, "metrics.history_unavailable", logging.WARNING, error=exc)

    def _collect(self) -> list[Metric]:
        c = self._controller
        if c is None:
            return []
        obs = c.last_observation
        return families(cluster=self.cluster, orchestrator=self.orchestrator, active=c.election.is_active(),
                        state=c.state, snapshot=obs.snapshot if obs is not None else None, last=self.last)


__all__ = ["OrchestratorMetrics", "LastFailover", "families", "SPARE"]
