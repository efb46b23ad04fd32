"""Choosing and changing the published synchronous standby set.

The one rule (the invariant ranking relies on): every write the primary ever
acknowledged is on at least ``num`` members of the *published* ``names``.
Hence a change from ``(k_o, S_o)`` to ``(k_n, S_n)`` is published at once
only when ``k_o - |S_o - S_n| >= k_n`` (every k_o-subset of the old set keeps
k_n members in the new one: adding names, or lowering ``num``). Anything else
goes in two steps: first add the new members (same ``num``), then, once
``k_n`` members of the new set have flushed at least the leader's flush LSN
(read before theirs, see ``model``), drop the old ones / raise ``num``.

A set published for an older term or another leader is replaced as soon as
``num`` members of the new set flushed the new leader's flush LSN: the new
leader was promoted holding every acknowledged write (and acknowledges
synchronous writes only under a set published for its own term, so its
flush LSN stands still until then), but its new standbys may not hold them
yet. Publishing a set of laggards at once would let one of them win the next
failover without the old term's acknowledged writes (found by the durability
random walk: FIRST 1 (d) acked LSN 1; d promoted; FIRST 1 (b) published
with b at 0; d died; b won).
"""
from __future__ import annotations

from dataclasses import dataclass

from walrus_ha.orchestrator.core.model import (
    ClusterSnapshot,
    CoreConfig,
    LeaderView,
    MemberView,
    PublishSync,
    Role,
    SyncMethod,
    SyncView,
)


@dataclass(frozen=True)
class SyncPlan:
    """What to publish now (None: nothing) and the set we are heading for.
    ``short`` is true when fewer healthy standbys exist than configured."""
    publish: PublishSync | None
    target: SyncView
    short: bool
    reason: str


def healthy_standbys(snapshot: ClusterSnapshot, leader: LeaderView, leader_member: MemberView) -> list[MemberView]:
    """Standbys fit for the synchronous set: reachable, streaming from the
    leader on its timeline, promotable (no nofailover / needs_reclone)."""
    timeline = leader_member.timeline or leader.timeline
    out = []
    for m in snapshot.members:
        if m.name == leader.name or not m.reachable or m.role is not Role.STANDBY:
            continue
        if not m.streaming or m.upstream_name != leader.name or m.nofailover or m.needs_reclone:
            continue
        if timeline and m.timeline and m.timeline != timeline:
            continue
        out.append(m)
    return out


def _target(config: CoreConfig, current: SyncView | None, healthy: list[MemberView],
            leader: LeaderView) -> SyncView:
    """The set we want: current healthy members first (no churn), then the
    most advanced others. FIRST: ``synchronous_node_count`` names; ANY: all
    healthy standbys with ``num = synchronous_node_count``."""
    k = config.synchronous_node_count
    by_name = {m.name: m for m in healthy}
    kept = [n for n in (current.names if current else ()) if n in by_name]
    others = sorted((m for m in healthy if m.name not in kept), key=lambda m: (-m.flush_lsn, m.name))
    names = kept + [m.name for m in others]
    if config.synchronous_method is SyncMethod.FIRST:
        names = names[:k]
    # Never shrink this leader's set below k because members merely stopped
    # streaming: that is what a dying primary looks like from here, and an
    # empty set would leave no promotable member (ranking admits only the
    # set). Keep the whole set as it is; commits wait (strict synchronous mode).
    if current is not None and current.enabled and len(names) < k:
        return current
    num = min(k, len(names))
    return SyncView(config.synchronous_method, num, tuple(names) if num else (), leader.name, leader.term)


def _publish(view: SyncView) -> PublishSync:
    return PublishSync(view.method, view.num, view.names, view.leader, view.term)


def _caught_up(names: tuple[str, ...], num: int, snapshot: ClusterSnapshot, leader_flush: int) -> bool:
    """``num`` members of ``names`` flushed at least ``leader_flush``."""
    if num <= 0:
        return True
    flushes = sorted((m.flush_lsn for m in snapshot.members if m.name in names and m.reachable), reverse=True)
    return len(flushes) >= num and flushes[num - 1] >= leader_flush


def plan_sync(snapshot: ClusterSnapshot, config: CoreConfig, leader: LeaderView,
              leader_member: MemberView) -> SyncPlan:
    """The next safe step towards the right synchronous set for ``leader``."""
    published = snapshot.sync
    if not config.synchronous_mode:
        target = SyncView(config.synchronous_method, 0, (), leader.name, leader.term)
        if published is not None and published.enabled:
            return SyncPlan(_publish(target), target, False, "synchronous mode is off: publish an empty set")
        return SyncPlan(None, target, False, "")
    current = published if (published is not None and published.leader == leader.name
                            and published.term == leader.term) else None
    healthy = healthy_standbys(snapshot, leader, leader_member)
    target = _target(config, current, healthy, leader)
    short = len(healthy) < config.synchronous_node_count
    if current is None:
        if not target.enabled:
            # Strict synchronous mode: an empty set would let the new leader
            # acknowledge synchronous commits that only it holds (it waits
            # under the agent's pending set until a real one appears).
            return SyncPlan(None, target, short, f"waiting for a standby to stream from {leader.name} before "
                                                 "publishing its first synchronous set (synchronous commits wait)")
        if _caught_up(target.names, target.num, snapshot, leader_member.flush_lsn):
            return SyncPlan(_publish(target), target, short, "publish the synchronous set for this leader and term")
        return SyncPlan(None, target, short, f"waiting for {target.render()} to catch up with the new leader "
                                             f"before publishing its first synchronous set")
    if target.same_set(current):
        return SyncPlan(None, target, short, "")
    old, new = set(current.names if current.enabled else ()), set(target.names)
    k_old = current.num if current.enabled else 0
    added = [n for n in target.names if n not in old]
    if k_old and added and (old - new or target.num > k_old):
        # The leader itself never counts as a synchronous standby: never carry its name along.
        kept_names = tuple(n for n in current.names if n != leader.name)
        grow = SyncView(current.method, k_old, kept_names + tuple(added), leader.name, leader.term)
        return SyncPlan(_publish(grow), target, short, f"add {', '.join(added)} to the synchronous set first")
    if k_old - len(old - new) >= target.num:
        return SyncPlan(_publish(target), target, short, "synchronous set change keeps every acknowledged write")
    if _caught_up(target.names, target.num, snapshot, leader_member.flush_lsn):
        return SyncPlan(_publish(target), target, short, "new synchronous members caught up with the leader")
    return SyncPlan(None, target, short,
                    f"waiting for {target.render()} to catch up with the leader before shrinking the set")
