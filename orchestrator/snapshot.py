"""Build the decision core's immutable ``ClusterSnapshot`` from one etcd
view (``common.records.ClusterView``) and the agents' probes.

The one rule: pure functions over plain data (no etcd, no gRPC, no clock):
everything I/O-shaped has already happened when these are called, so the
builder is unit-tested with plain values.

Members are the union of the member keys and the agents probed this loop
(a dead primary whose key is gone is still probed, from the leader record).
What an agent answered wins over its member key (the key may be up to
``loop_wait`` old); an unreachable member is described by its key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from walrus_ha.common.records import ClusterView, MemberRecord
from walrus_ha.orchestrator.core.model import (
    ClusterSnapshot,
    CoreConfig,
    FailoverState,
    LeaderView,
    MemberView,
    Role,
    SwitchoverRequest,
    SyncMethod,
    SyncView,
)
from walrus_ha.orchestrator.probe import AgentProbe, ProbeOutcome


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def agent_addresses(view: ClusterView, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{member: agent_address}`` to probe: every member key, the leader
    (even when its member key is gone) and ``extra`` (members remembered
    from earlier loops)."""
    out = dict(extra or {})
    if view.leader is not None and view.leader.agent_address:
        out[view.leader.name] = view.leader.agent_address
    for m in view.members:
        if m.agent_address:
            out[m.name] = m.agent_address
    return out


def tag_fields(tags: Mapping[str, Any]) -> dict[str, Any]:
    """``nofailover`` and ``priority`` of ``MemberView`` from a member's tags
    (the agent sends strings, its member record holds typed values)."""
    return dict(nofailover=_truthy(tags.get("nofailover", False)), priority=_int(tags.get("priority", 0)))


def member_view(name: str, record: MemberRecord | None, probe: AgentProbe | None) -> MemberView:
    """One ``MemberView`` from the member key and/or the agent's answer
    (``probe.member``, already a view: ``convert.probe_from_pb``)."""
    tags: dict[str, Any] = dict(record.tags) if record is not None else {}
    etcd_facts = dict(has_member_key=record is not None,
                      highest_term=record.highest_term if record is not None else 0)
    if probe is not None and probe.answered:
        tags.update(dict(probe.tags))
        return replace(probe.member, name=name, **etcd_facts, **tag_fields(tags))
    if record is not None:
        fields = dict(role=Role.parse(record.role), timeline=record.timeline, term=record.term,
                      flush_lsn=record.flush_lsn, replay_lsn=record.replay_lsn,
                      streaming=record.streaming, upstream=record.upstream, fenced=record.fenced,
                      needs_reclone=record.needs_reclone)
    else:
        fields = dict(role=Role.UNKNOWN)
    refused = probe is not None and probe.outcome is ProbeOutcome.REFUSED
    return MemberView(name=name, reachable=False, agent_up=not refused, **etcd_facts,
                      **tag_fields(tags), **fields)


def sync_view(view: ClusterView) -> SyncView | None:
    rec = view.sync
    if rec is None:
        return None
    try:
        method = SyncMethod(str(rec.method).lower())
    except ValueError:
        method = SyncMethod.FIRST
    return SyncView(method=method, num=rec.num, names=tuple(rec.names), leader=rec.leader, term=rec.term)


def build_snapshot(view: ClusterView, probes: Mapping[str, AgentProbe],
                   last_known_primary_lsn: int = 0, last_leader: str = "") -> ClusterSnapshot:
    """The snapshot the core decides on. Members are sorted by name."""
    records = view.members_by_name
    names = sorted(set(records) | set(probes))
    members = tuple(member_view(n, records.get(n), probes.get(n)) for n in names)
    leader = None
    if view.leader is not None:
        leader = LeaderView(name=view.leader.name, term=view.leader.term or view.term,
                            timeline=view.leader.timeline, since=view.leader.since)
    return ClusterSnapshot(
        term=view.term, leader=leader, members=members, sync=sync_view(view), paused=view.paused,
        switchover=SwitchoverRequest.from_dict(view.switchover),
        failover=FailoverState.from_dict(view.failover),
        last_known_primary_lsn=last_known_primary_lsn,
        initialized=view.initialize is not None,
        last_leader=view.leader.name if view.leader is not None else last_leader)


def primary_lsn(snapshot: ClusterSnapshot) -> tuple[int, int] | None:
    """``(leader term, flush LSN)`` the leader reports now, or None."""
    if snapshot.leader is None:
        return None
    m = snapshot.member(snapshot.leader.name)
    if m is None or m.role is not Role.PRIMARY:
        return None
    return snapshot.leader.term, m.flush_lsn


class PrimaryLsnTracker:
    """The highest flush LSN the current/previous primary was seen at.

    Kept across loops so that the RPO receipt of a failover knows where the
    dead primary was even after its member key vanished. A new leader term
    starts a new count; while there is no leader the old value is kept.
    """

    def __init__(self) -> None:
        self.term = 0
        self.lsn = 0
        self.leader = ""     # the last leader seen (history's ``old_leader``)

    def update(self, snapshot: ClusterSnapshot) -> int:
        if snapshot.leader is not None:
            self.leader = snapshot.leader.name
        seen = primary_lsn(snapshot)
        if seen is not None:
            term, lsn = seen
            if term != self.term:
                self.term, self.lsn = term, lsn
            else:
                self.lsn = max(self.lsn, lsn)
        return self.lsn

    def merge(self, seen: tuple[int, int] | None) -> int:
        """Fold in another report ``(term, flush LSN)`` of the last leader (its
        status stream's last push, its member record): only one for the term
        counted now raises the value. Still a lower bound: a primary that dies
        may have flushed more after its last report."""
        if seen is not None and seen[0] == self.term:
            self.lsn = max(self.lsn, seen[1])
        return self.lsn


def core_config(settings: Any, dynamic: Mapping[str, Any] | None = None) -> CoreConfig:
    """``CoreConfig`` from the orchestrator config, overridden by ``dynamic``'s
    known fields (unknown or bad values are ignored). The controller passes
    its effective config, already resolved against the validated ``config``
    key (``common/dynconfig.py``), and no ``dynamic``."""
    base = CoreConfig.from_settings(settings)
    if not dynamic:
        return base
    merged = {f: getattr(base, f) for f in base.__dataclass_fields__}
    for key, value in dynamic.items():
        if key in merged and key != "synchronous_method":
            if isinstance(merged[key], bool) != isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) or isinstance(value, bool):
                merged[key] = type(merged[key])(value)
        elif key == "synchronous_method" and str(value).lower() in ("first", "any"):
            merged[key] = SyncMethod(str(value).lower())
    return CoreConfig(**merged)
