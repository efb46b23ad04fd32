"""The agent's Prometheus metrics (``GET /metrics`` on the HTTP API).

The one rule: a scrape reads only what the agent already holds (its last
published status, the probe facts, the WAL counters); ``families`` is pure
over those values, so it is tested by feeding it a status and parsing the
text it gives. Every series carries ``cluster`` and ``member``; names start
``walrus_``. Unknown values are absent, not zero (e.g. a standby's lag with
no leader record).

* state sets (one series per value, 1 for the current one): ``walrus_role``
  {role}, ``walrus_agent_state``{state}
* what the probes conclude: ``walrus_primary``, ``walrus_replica``,
  ``walrus_holds_leader``, ``walrus_lease_valid``,
  ``walrus_lease_remaining_seconds``, ``walrus_fenced``{reason} (reason: the
  fence reason's leading words, ``fence_reason_class``), ``walrus_sync_set_member``
* position: ``walrus_term``, ``walrus_leader_term``, ``walrus_timeline``,
  ``walrus_{write,flush,replay,receive}_lsn`` (byte positions)
* replication: on a standby ``walrus_lag_bytes`` (leader's published flush
  LSN minus its own); on a primary per standby
  ``walrus_replication_lag_bytes``{standby, stage=sent|flush|replay},
  ``walrus_replication_lag_seconds``{standby, stage=write|flush|replay},
  ``walrus_replication_sync_state``{standby, sync_state},
  ``walrus_sync_standbys_required``
* embedded engine: ``walrus_wal_written_bytes_total``,
  ``walrus_wal_fsync_seconds`` (histogram of ``Wal.flush``'s fdatasync rounds)
* errors: ``walrus_write_error``, ``walrus_wal_repairs``, and (from the gRPC
  interceptor, ``common.metrics.RpcErrors``) ``walrus_rpc_errors_total``
"""
from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

import walrus_ha
from walrus_ha.common.metrics import CallbackCollector, Gauges
from walrus_ha.common.status import Role
from walrus_ha.node.agent import probes
from walrus_ha.node.agent.status import AgentState, AgentStatus
from walrus_ha.node.engine.base import SyncSpec
from walrus_ha.node.engine.embedded.walstats import WalStatsSnapshot

_REASON_WORD = re.compile(r"^[A-Za-z_-]+$")


def fence_reason_class(reason: str) -> str:
    """A bounded label for a fence reason: its words before the first ``:``
    up to the first that names something (a member, an address, a number),
    e.g. ``lease deadline passed: ...`` -> ``lease deadline passed``,
    ``following n2@127.0.0.1:7101`` -> ``following``, ``taking leadership at
    term 4`` -> ``taking leadership at term``. At most 60 characters."""
    words = []
    for word in reason.split(":", 1)[0].split():
        if not _REASON_WORD.match(word):
            break
        words.append(word)
    return " ".join(words)[:60]


def families(status: AgentStatus | None, facts: probes.MemberFacts, wal: WalStatsSnapshot | None = None, *,
             cluster: str, member: str) -> list[Metric]:
    """Every agent metric family for one scrape (pure)."""
    g = Gauges("walrus_", {"cluster": cluster, "member": member})
    engine_kind = status.engine.engine if status is not None else ""
    g.add("info", "Version and engine of this agent (always 1)", 1, version=walrus_ha.__version__,
          engine=engine_kind)
    g.enum("role", "Engine role (1 for the current one)", "role", facts.role.value, [r.value for r in Role])
    g.enum("agent_state", "Agent state (1 for the current one)", "state", facts.state.value,
           [s.value for s in AgentState])
    g.add("primary", "1 when /primary answers 200: leader key, unfenced, valid lease", probes.is_primary(facts))
    g.add("replica", "1 when /replica answers 200: a streaming standby", probes.is_replica(facts))
    g.add("holds_leader", "1 while this agent holds the leader key", facts.holds_leader)
    g.add("lease_valid", "1 while the leader key's lease is before its fencing deadline", facts.lease_valid)
    g.add("sync_set_member", "1 when this member is in the current leader's published synchronous set",
          facts.in_sync_set)
    g.add("loop_age_seconds", "Time since the agent loop began its last iteration", facts.loop_age_s)
    g.add("lag_bytes", "Standby: the leader's published flush LSN minus this member's flush/replay LSN",
          facts.lag_bytes)
    if status is not None:
        _status_families(g, status)
    out = g.families()
    if wal is not None:
        out += _wal_families(wal, cluster, member)
    return out


def _status_families(g: Gauges, status: AgentStatus) -> None:
    e = status.engine
    g.add("fenced", "1 while the engine refuses writes; reason: the fence reason's leading words", e.fenced,
          reason=fence_reason_class(e.fence_reason) if e.fenced else "")
    g.add("lease_remaining_seconds", "Time left on this agent's etcd lease", max(0.0, status.lease_remaining_s))
    g.add("term", "Term stamped on this engine's timeline", e.term)
    g.add("leader_term", "Term of the leader key last seen in etcd", status.leader_term)
    g.add("timeline", "Engine timeline", e.timeline)
    for name in ("write", "flush", "replay", "receive"):
        g.add(f"{name}_lsn", f"{name.capitalize()} LSN (byte position in the WAL)", getattr(e, f"{name}_lsn"))
    g.add("streaming", "1 while a standby streams from its upstream", e.streaming)
    g.add("needs_reclone", "1 when the standby cannot continue without a re-clone", e.needs_reclone)
    g.add("write_error", "1 while writes fail on this primary (e.g. disk full)", bool(e.write_error))
    g.add("wal_repairs", "Damaged WAL ranges recovery dropped since the engine opened", e.wal_repairs)
    for s in e.standbys:
        for stage, value in (("sent", s.send_lag_bytes), ("flush", s.flush_lag_bytes),
                             ("replay", s.replay_lag_bytes)):
            g.add("replication_lag_bytes", "Primary: bytes a standby is behind, per stage", value,
                  standby=s.name, stage=stage)
        for stage, secs in (("write", s.write_lag_s), ("flush", s.flush_lag_s), ("replay", s.replay_lag_s)):
            g.add("replication_lag_seconds", "Primary: seconds a standby is behind, per stage", secs,
                  standby=s.name, stage=stage)
        g.add("replication_sync_state", "Primary: a connected standby and its sync state (always 1)", 1,
              standby=s.name, sync_state=s.sync_state)
    if e.role is Role.PRIMARY:
        try:
            required = SyncSpec.parse(e.sync_standbys).num
        except ValueError:
            required = None
        g.add("sync_standbys_required", "Primary: standbys each commit waits for (0: asynchronous)", required)


def _wal_families(wal: WalStatsSnapshot, cluster: str, member: str) -> list[Metric]:
    labels = ["cluster", "member"]
    written = CounterMetricFamily("walrus_wal_written_bytes", "WAL bytes written by this engine", labels=labels)
    written.add_metric([cluster, member], wal.bytes_written)
    fsync = HistogramMetricFamily("walrus_wal_fsync_seconds", "Latency of the WAL's fdatasync rounds",
                                  labels=labels)
    fsync.add_metric([cluster, member], [(_le(b), n) for b, n in wal.buckets], wal.fsync_seconds)
    return [written, fsync]


def _le(bound: float) -> str:
    return floatToGoString(bound)      # "+Inf" for the last bucket, as prometheus_client writes it


def agent_registry(agent: object, cluster: str, member: str) -> CollectorRegistry:
    """A fresh registry collecting ``families`` from a running ``NodeAgent``
    at each scrape: its ``last_status()``, ``probe_facts()`` and, for the
    embedded engine, ``engine.wal_stats_snapshot()``. The caller adds the
    gRPC interceptor's counter to the same registry."""
    registry = CollectorRegistry(auto_describe=False)
    wal_stats: Callable[[], WalStatsSnapshot] | None = getattr(getattr(agent, "engine", None),
                                                               "wal_stats_snapshot", None)

    def collect() -> list[Metric]:
        return families(agent.last_status(), agent.probe_facts(),  # type: ignore[attr-defined]
                        wal_stats() if wal_stats is not None else None, cluster=cluster, member=member)

    registry.register(CallbackCollector(collect))  # type: ignore[arg-type]
    return registry


__all__ = ["families", "fence_reason_class", "agent_registry"]
