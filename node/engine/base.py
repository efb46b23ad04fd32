"""The engine interface: what the node agent needs from a replication engine.

Both implementations (``embedded``, ``postgres``) satisfy ``Engine`` and pass
the same contract suite (``tests/node/engine/test_engine_contract.py``). Every
operation is idempotent: asking for the state the engine is already in is a
no-op that returns normally. Errors are the project's own (``common.errors``):
``WrongRole``, ``StaleTerm``, ``NeedsReclone``, ``Fenced``, ``EngineError``.
``Role`` and ``SyncMethod`` are ``common.status``'s, shared with the etcd
records and the orchestrator; an engine never reports ``Role.UNKNOWN``.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from walrus_ha.common.status import Role as Role  # re-exported: the engine's status speaks them
from walrus_ha.common.status import SyncMethod as SyncMethod


class CommitLevel(enum.Enum):
    """synchronous_commit levels, weakest first."""
    OFF = "off"
    LOCAL = "local"
    REMOTE_WRITE = "remote_write"
    ON = "on"
    REMOTE_APPLY = "remote_apply"


_SYNC_RE = re.compile(r"^\s*(FIRST|ANY)\s+(\d+)\s*\(([^)]*)\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SyncSpec:
    """A synchronous standby set, ``FIRST n (a, b)`` or ``ANY n (a, b)``.

    ``num == 0`` or no names means asynchronous replication.
    """
    method: SyncMethod = SyncMethod.FIRST
    num: int = 0
    names: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.num > 0 and bool(self.names)

    def render(self) -> str:
        if not self.enabled:
            return ""
        return f"{self.method.name} {self.num} ({', '.join(self.names)})"

    @classmethod
    def parse(cls, text: str) -> SyncSpec:
        """Parse ``FIRST n (a, b)`` / ``ANY n (a, b)``; "" means async.

        Raises ValueError with a sentence on anything else.
        """
        if not text or not text.strip():
            return cls()
        m = _SYNC_RE.match(text)
        if not m:
            raise ValueError(f"not a standby set (expected 'FIRST n (a, b)' or 'ANY n (a, b)'): {text!r}")
        names = tuple(n.strip() for n in m.group(3).split(",") if n.strip())
        num = int(m.group(2))
        if num > len(names):
            raise ValueError(f"standby set asks for {num} of only {len(names)} names: {text!r}")
        return cls(SyncMethod(m.group(1).lower()), num, names)


@dataclass(frozen=True)
class Upstream:
    """The primary a standby streams from."""
    name: str
    address: str          # data address: host:port of WalStream (embedded) or postgres
    timeline: int = 0     # the upstream's timeline when known, else 0

    def __str__(self) -> str:
        return f"{self.name}@{self.address}"


@dataclass(frozen=True)
class StandbyInfo:
    """One standby as seen by its primary (a row of pg_stat_replication)."""
    name: str
    sent_lsn: int = 0
    write_lsn: int = 0
    flush_lsn: int = 0
    replay_lsn: int = 0
    send_lag_bytes: int = 0
    flush_lag_bytes: int = 0
    replay_lag_bytes: int = 0
    write_lag_s: float = 0.0
    flush_lag_s: float = 0.0
    replay_lag_s: float = 0.0
    sync_state: str = "async"


@dataclass(frozen=True)
class SlotInfo:
    name: str
    restart_lsn: int = 0
    active: bool = False
    lost: bool = False
    retained_bytes: int = 0


@dataclass(frozen=True)
class EngineStatus:
    """A point-in-time view of the engine. LSNs are ints (see walrus.lsn).

    ``flush_lsn`` is what ranks failover candidates: on a primary the locally
    flushed WAL end, on a standby the WAL it received and flushed.
    """
    role: Role
    timeline: int = 0
    term: int = 0
    write_lsn: int = 0
    flush_lsn: int = 0
    replay_lsn: int = 0
    receive_lsn: int = 0
    upstream: str = ""
    streaming: bool = False
    fenced: bool = False
    fence_reason: str = ""
    needs_reclone: bool = False
    standbys: tuple[StandbyInfo, ...] = ()
    slots: tuple[SlotInfo, ...] = ()
    engine: str = ""
    sync_standbys: str = ""
    detail: str = ""
    write_error: str = ""             # why writes fail right now ("" = they work)
    write_error_since: float = 0.0    # unix time of the first failure in a row (0 if none)
    wal_repairs: int = 0              # damaged WAL ranges recovery dropped since the engine opened
    wal_repair: str = ""              # the last one: LSN range and reason


@dataclass(frozen=True)
class Discarded:
    """What a rejoin dropped from this node's WAL: ``fork_lsn`` (where its
    history left the new upstream's) to ``end_lsn`` (its WAL end), on
    ``timeline``. ``bytes`` counts WAL bytes of the dropped records (the
    embedded engine leaves out its SKIP padding); ``records`` and
    ``transactions`` (writes: put/delete/batch) are -1 when unknown
    (PostgreSQL). ``term`` is the term of the leader it rejoined; ``at`` wall
    time. All zero but ``term``/``at``: it rejoined without discarding anything."""
    timeline: int
    fork_lsn: int
    end_lsn: int
    bytes: int
    records: int = -1
    transactions: int = -1
    upstream: str = ""
    term: int = 0
    at: float = 0.0


class RejoinMethod(enum.Enum):
    NONE = "none"          # WAL had not diverged: just followed
    REWOUND = "rewound"    # divergent tail dropped, state rebuilt
    RECLONED = "recloned"  # data directory replaced by a fresh base backup


@runtime_checkable
class Engine(Protocol):
    """A replication engine on one node (primary or standby).

    Life cycle: ``is_initialized`` -> ``bootstrap`` (first primary) or
    ``clone`` (new standby) -> ``start`` -> role changes -> ``stop``.
    """

    kind: str            # "embedded" or "postgres"
    data_address: str    # where clients and standbys reach this engine
    # ``rejoin`` takes a stopped node and starts it as a standby (never as a
    # primary first); False: the agent starts the engine (fenced) before ``rejoin``.
    rejoins_stopped: bool
    # What the last rejoin discarded (set by a rewind; None when none did):
    # the exact RPO receipt. The agent compares it before and after ``rejoin``.
    last_discard: Discarded | None
    # Settings changed by ``apply_parameters`` that wait for the next start.
    pending_restart: tuple[str, ...]

    def is_initialized(self) -> bool:
        """True when the data directory holds a usable database."""

    def bootstrap(self) -> None:
        """Create a new database as primary on timeline 1. Data dir must be empty."""

    def clone(self, upstream: Upstream) -> None:
        """Fill an empty data directory with a base backup of ``upstream``; the
        node then starts as a standby of it."""

    def start(self) -> None:
        """Start in the role recorded in the data directory (crash recovery first).
        A primary starts fenced when ``start_fenced`` was set."""

    def stop(self) -> None:
        """Stop cleanly; idempotent."""

    def status(self) -> EngineStatus:
        """Current status; cheap enough to call several times a second."""

    def promote(self, term: int) -> EngineStatus:
        """Standby -> primary on a new timeline stamped with ``term``.
        Raises StaleTerm when ``term`` is older than one already seen."""

    def demote(self, term: int) -> int | None:
        """Primary -> standby with no upstream (read-only). Idempotent.
        Returns the final flush LSN when the engine knows it (embedded: after
        draining the standbys), else None (postgres: read it from status)."""

    def follow(self, upstream: Upstream, term: int) -> None:
        """Stream from ``upstream``. Raises StaleTerm for an old ``term``;
        raises NeedsReclone if it cannot catch up from WAL."""

    def rejoin(self, upstream: Upstream, term: int, allow_reclone: bool = True) -> RejoinMethod:
        """Make a (possibly diverged) node a standby of ``upstream``: rewind,
        or re-clone when rewind is impossible and ``allow_reclone``."""

    def request_reclone(self, reason: str) -> None:
        """Report ``needs_reclone`` (``reason`` in ``detail``) until the next
        ``rejoin``, which then re-clones from its upstream instead of
        following (``walrus ctl reinit``). Nothing is wiped here."""

    def restart_pending(self) -> bool:
        """A setting changed that takes effect only at the next restart:
        ``pending_restart`` (parameters walrus applied) or, on PostgreSQL, any
        ``pg_settings.pending_restart`` (e.g. an ALTER SYSTEM by hand);
        embedded: never."""

    def fence(self, reason: str) -> None:
        """Refuse and stop acknowledging writes immediately."""

    def unfence(self) -> None:
        """Accept writes again (only the leader-holding agent calls this)."""

    def set_lease_deadline(self, deadline: float | None) -> None:
        """Acknowledge no write after ``deadline`` (time.monotonic() seconds);
        the agent extends it after each successful lease renewal. None: no limit."""

    def set_sync_standbys(self, spec: SyncSpec) -> None:
        """Apply the synchronous standby set published by the orchestrator."""

    def apply_parameters(self, parameters: Mapping[str, str]) -> tuple[str, ...]:
        """Run with these PostgreSQL ``parameters`` (cluster config): applied
        live where the setting allows; returns those waiting for a restart
        (also ``pending_restart``). An engine without such settings ignores them."""
