"""Is a cluster healthy? A pure verdict over the agents' statuses.

Healthy means: exactly one member is an unfenced primary holding the leader
key, and every other member is a standby streaming from it. The verdict lists
every problem in a sentence so progress output can say what we wait for.
"""
from __future__ import annotations

from dataclasses import dataclass

from walrus_ha.protos import common_pb2


@dataclass(frozen=True)
class MemberHealth:
    """What the health check needs from one agent's status (None fields = no answer)."""
    name: str
    reachable: bool
    role: str = ""            # "primary" | "standby" | "stopped" | ""
    holds_leader: bool = False
    fenced: bool = False
    streaming: bool = False
    upstream: str = ""        # name of the primary followed
    flush_lsn: int = 0
    timeline: int = 0
    term: int = 0


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    leader: str | None
    problems: tuple[str, ...]

    def summary(self) -> str:
        if self.healthy:
            return f"healthy, leader {self.leader}"
        return "; ".join(self.problems) or "not healthy"


_ROLES = {common_pb2.ROLE_PRIMARY: "primary", common_pb2.ROLE_STANDBY: "standby",
          common_pb2.ROLE_STOPPED: "stopped"}


def member_health(name: str, status) -> MemberHealth:
    """Convert a ``NodeStatus`` message (or None) into a ``MemberHealth``."""
    if status is None:
        return MemberHealth(name=name, reachable=False)
    eng = status.engine
    return MemberHealth(name=name, reachable=True, role=_ROLES.get(eng.role, ""),
                        holds_leader=status.holds_leader, fenced=eng.fenced, streaming=eng.streaming,
                        upstream=eng.upstream.partition("@")[0], flush_lsn=eng.flush_lsn,
                        timeline=eng.timeline, term=eng.term)


def judge(members: list[MemberHealth]) -> Verdict:
    """The verdict over all members (see the module docstring)."""
    problems: list[str] = []
    primaries = [m for m in members if m.reachable and m.role == "primary" and m.holds_leader and not m.fenced]
    for m in members:
        if not m.reachable:
            problems.append(f"{m.name} does not answer")
    if len(primaries) != 1:
        problems.append("no leader yet" if not primaries
                        else f"{len(primaries)} primaries: {', '.join(m.name for m in primaries)}")
        return Verdict(False, None, tuple(problems))
    leader = primaries[0].name
    for m in members:
        if not m.reachable or m.name == leader:
            continue
        if m.role != "standby":
            problems.append(f"{m.name} is {m.role or 'in no role'}{' (fenced)' if m.fenced else ''}")
        elif not m.streaming:
            problems.append(f"{m.name} is not streaming yet")
        elif m.upstream and m.upstream != leader:
            problems.append(f"{m.name} streams from {m.upstream}, not {leader}")
    return Verdict(not problems, leader, tuple(problems))
