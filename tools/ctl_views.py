"""What ``walrus ctl`` prints, as pure functions of the replies: typed tags,
tables wrapped to a width, the replication tree, libpq connection strings,
errors as JSON. No I/O here; ``ctl.py`` fetches and prints.
"""
from __future__ import annotations

import datetime
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc

from walrus_ha.common.config import parse_address
from walrus_ha.common.errors import WalrusError
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.engine.postgres.conf import conninfo
from walrus_ha.protos import cluster_pb2, common_pb2
from walrus_ha.tools.localcluster.client import ClusterUnavailable, OperationRefused

TABLE_WIDTH = 120
_INT = re.compile(r"-?[0-9]+")
_ROLE = {common_pb2.ROLE_PRIMARY: "primary", common_pb2.ROLE_STANDBY: "standby",
         common_pb2.ROLE_STOPPED: "stopped"}


_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


def parse_when(text: str, now: datetime.datetime) -> float:
    """``--scheduled AT`` as unix time: ``now`` (0: at once), ``HH:MM[:SS]``
    (the next such time of ``now``'s day or the day after, in ``now``'s zone)
    or ISO-8601 (without a zone: ``now``'s zone). ``now`` must be aware.
    Raises ValueError for anything else or a time already past."""
    word = text.strip()
    if word.lower() == "now":
        return 0.0
    m = _CLOCK.fullmatch(word)
    if m:
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day")
        at = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if at <= now:
            at += datetime.timedelta(days=1)
        return at.timestamp()
    try:
        at = datetime.datetime.fromisoformat(word)
    except ValueError:
        raise ValueError(f"{text!r} is neither HH:MM nor an ISO-8601 time (e.g. 2026-12-03T21:30:00+00:00)") \
            from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=now.tzinfo)
    if at <= now:
        raise ValueError(f"{text!r} is in the past")
    return at.timestamp()


def scheduled_line(reply: cluster_pb2.ListMembersReply, now: float) -> str:
    """The pending switchover request, for ``ctl list`` / ``history`` ("" if none)."""
    if not reply.switchover_pending:
        return ""
    to = reply.switchover_candidate or "the best standby"
    at = reply.switchover_scheduled_at
    if not at:
        return f"switchover to {to} pending"
    stamp = datetime.datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")
    return (f"switchover to {to} scheduled at {stamp} (in {max(0.0, at - now):.0f}s; "
            f"cancel: walrus ctl flush switchover)")


def typed_tag(value: str) -> object:
    """A tag as its type: ``"true"`` -> True, ``"0"`` -> 0; anything else stays a string.
    (Tags travel as strings on the wire; the node config types them.)"""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(value.strip()):
        return int(value)
    return value


def detail_lines(label: str, text: str, width: int = TABLE_WIDTH, indent: int = 6) -> list[str]:
    """``text`` under a table row: ``<indent>label: text``, wrapped to ``width``
    with continuation lines aligned after the label; no line is dropped."""
    head = " " * indent + f"{label}: "
    return textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * len(head),
                         break_long_words=True, break_on_hyphens=False) or [head.rstrip()]


# -- topology --------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    """One member in the replication tree."""
    name: str
    role: str
    sync: str              # "sync" / "async" for a standby, "" for the primary or a detached member
    lag_bytes: int
    streaming: bool
    reachable: bool
    note: str
    flush_lsn: str
    timeline: int
    standbys: tuple[Node, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "sync": self.sync or None, "lag_bytes": self.lag_bytes,
                "streaming": self.streaming, "reachable": self.reachable, "note": self.note,
                "flush_lsn": self.flush_lsn, "timeline": self.timeline,
                "standbys": [s.to_dict() for s in self.standbys]}


def upstream_name(upstream: str) -> str:
    """The member name in an upstream ``name@host:port`` (or the whole text)."""
    return upstream.partition("@")[0]


def topology(reply: cluster_pb2.ListMembersReply) -> list[Node]:
    """Roots of the replication tree: the leader first with the members
    streaming from it (recursively: cascades), then members attached to
    nobody known (stopped, unreachable, upstream gone), by name."""
    members = {m.name: m for m in reply.members}
    children: dict[str, list[cluster_pb2.Member]] = {}
    roots = []
    for m in sorted(reply.members, key=lambda m: m.name):
        parent = upstream_name(m.upstream)
        if not m.is_leader and parent in members and parent != m.name:
            children.setdefault(parent, []).append(m)
        else:
            roots.append(m)
    roots.sort(key=lambda m: (not m.is_leader, m.name))

    def build(m: cluster_pb2.Member, seen: frozenset[str]) -> Node:
        kids = tuple(build(c, seen | {m.name}) for c in children.get(m.name, ()) if c.name not in seen)
        attached = bool(upstream_name(m.upstream) in members and not m.is_leader)
        notes = [n for n, on in (("leader", m.is_leader), ("fenced", m.fenced), ("UNREACHABLE", not m.reachable),
                                 ("WRITES FAIL", bool(m.write_error))) if on]
        return Node(m.name, _ROLE.get(m.role, "?"), ("sync" if m.in_sync_set else "async") if attached else "",
                    m.lag_bytes, m.streaming, m.reachable, ", ".join(notes), format_lsn(m.flush_lsn), m.timeline,
                    kids)
    return [build(m, frozenset()) for m in roots]


def topology_lines(roots: Iterable[Node]) -> list[str]:
    """The tree as text: ``|--`` / ``\\--`` branches (ASCII, safe in any pipe)."""
    lines: list[str] = []

    def walk(node: Node, lead: str, branch: str) -> None:
        parts = [node.name, node.role]
        if node.sync:
            parts.append(node.sync)
            parts.append("streaming" if node.streaming else "NOT streaming")
            parts.append(f"lag {node.lag_bytes} B")
        parts += [f"tl {node.timeline}", f"flush {node.flush_lsn}"]
        if node.note:
            parts.append(f"({node.note})")
        lines.append(lead + branch + "  ".join(parts))
        below = lead + ("" if not branch else ("|   " if branch == "|-- " else "    "))
        for i, kid in enumerate(node.standbys):
            walk(kid, below, "\\-- " if i == len(node.standbys) - 1 else "|-- ")
    for root in roots:
        walk(root, "", "")
    return lines


# -- dsn -------------------------------------------------------------------------

class DsnUnavailable(WalrusError):
    """No member of the asked role to connect to."""


def dsn_targets(reply: cluster_pb2.ListMembersReply, role: str) -> list[cluster_pb2.Member]:
    """``primary``: the leader; ``replica``: reachable streaming standbys, by name.
    Raises DsnUnavailable when there is none."""
    if role == "primary":
        found = [m for m in reply.members if m.is_leader]
    else:
        found = sorted((m for m in reply.members if not m.is_leader and m.role == common_pb2.ROLE_STANDBY
                        and m.streaming and m.reachable), key=lambda m: m.name)
    if not found:
        raise DsnUnavailable("no leader now" if role == "primary" else "no streaming replica now")
    if not all(m.data_address for m in found):
        raise DsnUnavailable(f"{', '.join(m.name for m in found if not m.data_address)}: no data address known")
    return found


def libpq_dsn(members: Sequence[cluster_pb2.Member], role: str, user: str, dbname: str) -> str:
    """A libpq connection string for ``members`` (several hosts: libpq tries
    them in order). ``target_session_attrs`` makes libpq skip a host that is
    not (or no longer) what was asked for."""
    hosts, ports = [], []
    for m in members:
        host, port = parse_address(m.data_address)
        hosts.append(host.strip("[]"))
        ports.append(str(port))
    return conninfo(host=",".join(hosts), port=",".join(ports), dbname=dbname, user=user,
                    target_session_attrs="read-write" if role == "primary" else "standby")


# -- errors ----------------------------------------------------------------------

def error_json(exc: Exception) -> dict:
    """``{"error": sentence, "code": ...}`` for ``--json``: the gRPC status name
    when an orchestrator refused, UNAVAILABLE when none answered, else the
    exception's class name; ``reason`` when the server sent one."""
    data: dict = {"error": str(exc)}
    if isinstance(exc, OperationRefused):
        data["code"] = exc.code.name
        if exc.reason.value:
            data["reason"] = exc.reason.name
    elif isinstance(exc, ClusterUnavailable):
        data["code"] = grpc.StatusCode.UNAVAILABLE.name
    else:
        data["code"] = type(exc).__name__
    return data


def versions_table(mine: str, members: Mapping[str, str | None], orchestrators: Mapping[str, str]) -> str:
    """``walrus ctl version`` as text."""
    lines = [f"walrus ctl {mine}"]
    lines += [f"member {n}: {v or 'no answer'}" for n, v in sorted(members.items())]
    lines += [f"orchestrator {n}: {v or '?'}" for n, v in sorted(orchestrators.items())]
    return "\n".join(lines)
