"""Small builders for decision-core tests: a three-node cluster in one line."""
from __future__ import annotations

from dataclasses import replace

from walrus_ha.orchestrator.core import ClusterSnapshot, LeaderView, MemberView, Role, SyncMethod, SyncView


def primary(name: str = "a", **kw) -> MemberView:
    """A reachable primary on timeline 1 at LSN 1000."""
    base = dict(role=Role.PRIMARY, timeline=1, term=1, flush_lsn=1000, replay_lsn=1000)
    return MemberView(name, **{**base, **kw})


def standby(name: str, upstream: str = "a", **kw) -> MemberView:
    """A reachable standby streaming from ``upstream`` on timeline 1."""
    base = dict(role=Role.STANDBY, timeline=1, term=1, flush_lsn=1000, replay_lsn=1000,
                streaming=True, upstream=upstream)
    return MemberView(name, **{**base, **kw})


def dead(m: MemberView) -> MemberView:
    """The member's agent refused the connection."""
    return replace(m, reachable=False, agent_up=False)


def hung(m: MemberView) -> MemberView:
    """The member's agent timed out."""
    return replace(m, reachable=False, agent_up=True)


def healthy(*extra: MemberView, term: int = 1, **kw) -> ClusterSnapshot:
    """Leader ``a`` with standbys ``b`` and ``c`` (or ``extra`` instead)."""
    members = extra or (primary(), standby("b"), standby("c"))
    leader = LeaderView("a", term, 1) if kw.pop("leader", True) else None
    return ClusterSnapshot(term=term, leader=leader, members=tuple(members), **kw)


def leaderless(*members: MemberView, term: int = 1, **kw) -> ClusterSnapshot:
    """No leader key; ``a`` was the last leader."""
    kw.setdefault("last_leader", "a")
    return ClusterSnapshot(term=term, leader=None, members=tuple(members), **kw)


def sync(*names: str, num: int = 1, method: SyncMethod = SyncMethod.FIRST, leader: str = "a",
         term: int = 1) -> SyncView:
    return SyncView(method, num, tuple(names), leader, term)


def summary(decision) -> list[str]:
    """The decision's actions as short readable strings (Wait left out)."""
    from walrus_ha.orchestrator.core import (
        ClearFailoverState,
        ClearSwitchover,
        DemoteForSwitchover,
        Follow,
        Promote,
        PublishSync,
        RecordHistory,
        Rejoin,
        RevokeLeaderLease,
        SaveFailoverState,
        Wait,
    )
    out = []
    for a in decision.actions:
        if isinstance(a, Promote):
            out.append(f"promote {a.member}@{a.term}")
        elif isinstance(a, Follow):
            out.append(f"follow {a.member}->{a.leader}@{a.term}")
        elif isinstance(a, Rejoin):
            out.append(f"rejoin {a.member}->{a.leader}@{a.term}")
        elif isinstance(a, RevokeLeaderLease):
            out.append(f"revoke {a.leader}@{a.expected_term}")
        elif isinstance(a, DemoteForSwitchover):
            out.append(f"demote {a.member}@{a.term}")
        elif isinstance(a, PublishSync):
            out.append(f"publish {a.method.name} {a.num} ({', '.join(a.names)})")
        elif isinstance(a, SaveFailoverState):
            s = a.state
            out.append(f"save {s.kind.value} {s.phase.value} {s.new_leader}@{s.term}")
        elif isinstance(a, RecordHistory):
            e = a.entry
            out.append(f"history {e.term} {e.old_leader}->{e.new_leader} lost={e.bytes_possibly_lost}")
        elif isinstance(a, ClearSwitchover):
            out.append("clear switchover")
        elif isinstance(a, ClearFailoverState):
            out.append("clear failover")
        elif isinstance(a, Wait):
            continue
        else:  # pragma: no cover - a new action kind needs a line here
            out.append(repr(a))
    return out
