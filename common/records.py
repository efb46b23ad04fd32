"""The values stored in etcd, as frozen dataclasses, and the cluster snapshot.

The one rule: a record is plain data. ``to_json()`` gives the exact bytes
written to etcd; ``from_json()`` accepts what any walrus version wrote
(unknown keys are ignored, missing keys take their defaults) and raises
``MalformedRecord`` -- never anything else -- for data it cannot use, so the
DCS layer can log and skip one bad key without crashing a loop.

Roles, kinds and methods are stored as their Enum *values* (``"primary"``,
``"failover"``, ``"first"``): roles and sync methods of ``common.status``,
kinds of ``orchestrator.core.model.OperationKind``; this module needs nothing
from ``node`` or ``orchestrator``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from walrus_ha.common.keyspace import Keyspace
from walrus_ha.common.log import log_event
from walrus_ha.common.status import Role, SyncMethod

log = logging.getLogger(__name__)

R = TypeVar("R", bound="_Record")


class MalformedRecord(ValueError):
    """A stored value is not valid JSON or does not fit the record's fields."""


class _Record:
    """Mixin: JSON round trip driven by the dataclass fields and their types."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Compact, key-sorted JSON: the exact value written to etcd."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """Build from a dict; unknown keys ignored. Raises MalformedRecord."""
        if not isinstance(data, dict):
            raise MalformedRecord(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _coerce(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise MalformedRecord(f"{cls.__name__}: {exc}") from None

    @classmethod
    def from_json(cls: type[R], text: str | bytes) -> R:
        """Parse a stored value. Raises MalformedRecord."""
        return cls.from_dict(parse_json(text))


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that raises MalformedRecord instead of vendor errors."""
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedRecord(f"not JSON: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; lists become tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise MalformedRecord(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(item, v, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise MalformedRecord(f"{where}: expected an object, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise MalformedRecord(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedRecord(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MalformedRecord(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise MalformedRecord(f"{where}: expected a string, got {value!r}")
        return value
    return value  # Any / dict entries: accepted as they are


@dataclass(frozen=True)
class MemberRecord(_Record):
    """``members/<name>``: one node agent's self-report, bound to its lease.

    ``role`` is a ``common.status.Role`` value (``primary``/``standby``/
    ``stopped``, by default ``unknown``; ``Role.parse`` reads it back); LSNs
    are byte positions (ints); ``updated_at`` is wall-clock seconds, for display only (never for
    deadlines). ``highest_term`` is the highest term this member has seen
    (its engine's persisted term or a later one etcd showed it): an emptied
    etcd is re-seeded above the highest of these.
    """
    name: str
    agent_address: str = ""
    data_address: str = ""
    role: str = Role.UNKNOWN.value
    timeline: int = 0
    term: int = 0
    write_lsn: int = 0
    flush_lsn: int = 0
    replay_lsn: int = 0
    receive_lsn: int = 0
    streaming: bool = False
    fenced: bool = False
    upstream: str = ""
    needs_reclone: bool = False
    tags: dict = field(default_factory=dict)
    engine: str = ""
    version: str = ""
    updated_at: float = 0.0
    highest_term: int = 0
    discarded: dict = field(default_factory=dict)   # the last rejoin's ``node.engine.base.Discarded``
    api_url: str = ""                                # the agent's HTTP API base URL (``http://host:port``)
    config_revision: int = 0                         # the cluster ``config`` revision it runs with (0: none)
    pending_restart: tuple[str, ...] = ()            # settings that take effect only after an engine restart


@dataclass(frozen=True)
class LeaderRecord(_Record):
    """``leader``: who is primary, under which term. Bound to the primary's lease."""
    name: str
    term: int = 0
    timeline: int = 0
    agent_address: str = ""
    data_address: str = ""
    since: float = 0.0


@dataclass(frozen=True)
class OrchestratorRecord(_Record):
    """``orchestrators/<id>``: where one orchestrator (active or spare) serves
    its Cluster service, bound to its election lease; ``walrus ctl --etcd``
    finds the cluster this way. Not used by any decision."""
    id: str
    address: str = ""
    version: str = ""
    started_at: float = 0.0


@dataclass(frozen=True)
class SyncRecord(_Record):
    """``sync``: the published synchronous standby set (``method`` a
    ``common.status.SyncMethod`` value, first/any)."""
    method: str = SyncMethod.FIRST.value
    num: int = 0
    names: tuple[str, ...] = ()
    leader: str = ""
    term: int = 0


@dataclass(frozen=True)
class HistoryRecord(_Record):
    """``history/<term>``: one failover/switchover and its RPO receipt.

    ``candidates`` is the ranking as published (one dict per member, with
    its exclusion reason if any); ``bytes_possibly_lost`` is
    ``max(0, last_primary_lsn - promoted_lsn)`` as computed by the writer.
    """
    term: int
    kind: str = "failover"
    old_leader: str = ""
    new_leader: str = ""
    last_primary_lsn: int = 0
    promoted_lsn: int = 0
    bytes_possibly_lost: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    candidates: tuple[dict, ...] = ()
    reason: str = ""
    orchestrator: str = ""
    timeline: int = 0
    discarded_by: str = ""              # the old leader, once it rejoined: the exact receipt below
    discarded_bytes: int = -1           # WAL it dropped from the fork to its end; -1 unknown
    discarded_records: int = -1         # -1: not counted (PostgreSQL)
    discarded_transactions: int = -1
    discard_fork_lsn: int = 0
    discard_end_lsn: int = 0


@dataclass(frozen=True)
class ClusterView:
    """One consistent snapshot of the cluster prefix (a single etcd read).

    ``revision`` is the etcd revision of the read. ``*_mod_revision`` fields
    are the keys' mod revisions (0 = absent), for compare-and-swap writes.
    ``leader_lease`` is the lease id the leader key is bound to (0 if none).
    ``config``, ``switchover`` and ``failover`` are the parsed JSON objects
    (None if absent or malformed); ``skipped`` names keys that were present
    but malformed (they were logged and left out).
    """
    revision: int = 0
    leader: LeaderRecord | None = None
    leader_lease: int = 0
    leader_mod_revision: int = 0
    term: int = 0
    members: tuple[MemberRecord, ...] = ()
    sync: SyncRecord | None = None
    sync_mod_revision: int = 0
    config: Mapping[str, Any] | None = None
    config_mod_revision: int = 0
    paused: bool = False
    switchover: Mapping[str, Any] | None = None
    failover: Mapping[str, Any] | None = None
    orchestrator: str | None = None
    initialize: str | None = None
    skipped: tuple[str, ...] = ()

    def member(self, name: str) -> MemberRecord | None:
        """The member record called ``name``, or None."""
        return next((m for m in self.members if m.name == name), None)

    @property
    def members_by_name(self) -> dict[str, MemberRecord]:
        """A fresh dict name -> record (the view itself stays immutable)."""
        return {m.name: m for m in self.members}


_warned: set[tuple[str, int]] = set()


def build_view(keys: Keyspace, revision: int, items: Iterable[tuple[bytes, bytes, int, int]]) -> ClusterView:
    """Parse ``(key, value, lease, mod_revision)`` items of one read into a ClusterView.

    Pure. A malformed value is logged and its key listed in ``skipped``;
    it never raises for bad data. Keys under ``history/`` and unknown keys
    are ignored.
    """
    fields: dict[str, Any] = {"revision": revision}
    members, skipped = [], []
    for raw_key, value, lease, mod in items:
        key = raw_key.decode(errors="replace")
        if not key.startswith(keys.prefix):
            continue
        name = key[len(keys.prefix):]
        try:
            _apply(fields, members, name, value, lease, mod)
        except MalformedRecord as exc:
            skipped.append(key)
            if (key, mod) not in _warned:     # once per version of the key, not once per loop
                if len(_warned) > 1000:
                    _warned.clear()
                _warned.add((key, mod))
                log_event(log, "skip malformed key", logging.WARNING, key=key, problem=str(exc))
    members.sort(key=lambda m: m.name)
    return ClusterView(members=tuple(members), skipped=tuple(skipped), **fields)


def _apply(fields: dict, members: list, name: str, value: bytes, lease: int, mod: int) -> None:
    if name.startswith("members/"):
        rec = MemberRecord.from_json(value)
        if rec.name != name[len("members/"):]:
            raise MalformedRecord(f"member record names {rec.name!r}")
        members.append(rec)
    elif name == "leader":
        fields.update(leader=LeaderRecord.from_json(value), leader_lease=lease, leader_mod_revision=mod)
    elif name == "term":
        fields["term"] = _typed(parse_json(value), int, "term")
    elif name == "sync":
        fields.update(sync=SyncRecord.from_json(value), sync_mod_revision=mod)
    elif name == "config":
        fields.update(config=_typed(parse_json(value), dict, "config"), config_mod_revision=mod)
    elif name == "pause":
        fields["paused"] = _typed(parse_json(value), bool, "pause")
    elif name in ("switchover", "failover"):
        fields[name] = _typed(parse_json(value), dict, name)
    elif name in ("orchestrator", "initialize"):
        fields[name] = _typed(parse_json(value), str, name)


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedRecord(f"{what}: expected {kind.__name__}, got {value!r}")
    return value
