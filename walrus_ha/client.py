"""Application helpers: follow the writable leader, and write to it across a failover.

The one rule: a write goes only to a leader the orchestrators call
``writable`` (``Cluster.WatchLeader``, design.md safety 11), and a write
whose outcome is unknown (the connection broke after it was sent) is never
simply sent again: it is read back from the next writable leader first, and
re-sent only when that leader does not hold it. Waits are bounded by the
caller's deadline; reconnects back off (jittered, doubling, capped).

    from walrus_ha.client import connect, StoreWriter

    with connect(["10.0.0.1:7400", "10.0.0.2:7400"], timeout=10) as leaders:
        print(leaders.current())                 # Leader(name='b', term=7, data_address=..., ...)
        writer = StoreWriter(leaders)            # embedded engine's Store
        writer.put(b"order/42", b"paid")         # survives a failover; never applied twice

PostgreSQL applications do not need this module: a libpq multi-host string
with ``target_session_attrs=read-write`` (``walrus ctl dsn``) finds the
primary by itself; see docs/clients.md.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from walrus_ha.common import grpcutil
from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc, store_pb2, store_pb2_grpc

log = logging.getLogger(__name__)

# A write that may or may not have happened: the leader broke or went away.
_UNKNOWN_OUTCOME = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


class NoLeader(WalrusError):
    """No writable leader was known within the caller's deadline."""


@dataclass(frozen=True)
class Leader:
    """The leader as the orchestrators report it (``cluster.proto`` ``Leader``)."""
    name: str
    term: int
    data_address: str
    agent_address: str = ""
    writable: bool = False

    @classmethod
    def from_pb(cls, msg: cluster_pb2.Leader) -> Leader | None:
        if not msg.present:
            return None
        return cls(msg.name, msg.term, msg.data_address, msg.agent_address, msg.writable)


def backoff_delay(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before reconnect ``attempt`` (0-based): ``initial * 2**attempt``
    capped at ``cap``, times a jitter in [0.5, 1). Pure but for ``rand``."""
    return min(cap, initial * (2 ** min(attempt, 30))) * (0.5 + rand() / 2)


class LeaderFollower:
    """Follows ``Cluster.WatchLeader`` on any of ``orchestrators`` in a
    background thread: a broken stream moves on to the next address after
    ``backoff_delay``; a message resets the backoff. ``current()`` is the
    latest writable leader (None while there is none); ``wait_writable``
    blocks until there is one, bounded by its timeout."""

    def __init__(self, orchestrators: Sequence[str], *, backoff_initial: float = 0.05, backoff_cap: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random) -> None:
        if not orchestrators:
            raise ValueError("at least one orchestrator address is needed")
        self.addresses = list(orchestrators)
        self.backoff_initial, self.backoff_cap = backoff_initial, backoff_cap
        self.clock, self.rand = clock, rand
        self._cond = threading.Condition()
        self._leader: Leader | None = None
        self._version = 0
        self._stop = threading.Event()
        self._stream: grpc.Future | None = None
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def start(self) -> LeaderFollower:
        self._thread = threading.Thread(target=self._run, name="walrus-leader-follower", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LeaderFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def current(self) -> Leader | None:
        """The latest leader reported writable (None: none now)."""
        with self._cond:
            return self._leader if self._leader is not None and self._leader.writable else None

    def wait_writable(self, timeout: float, not_term: int = 0) -> Leader:
        """A writable leader (with ``not_term``: at another term than that,
        i.e. a new leader, or the same one re-reported); raises ``NoLeader``
        after ``timeout`` seconds."""
        deadline = self.clock() + timeout
        with self._cond:
            while True:
                lead = self._leader
                if lead is not None and lead.writable and lead.term != not_term:
                    return lead
                left = deadline - self.clock()
                if left <= 0 or self._stop.is_set():
                    raise NoLeader(f"no writable leader within {timeout:g}s"
                                   f"{' (last error: ' + self.last_error + ')' if self.last_error else ''}")
                self._cond.wait(min(left, 0.5))

    def changes(self, timeout: float) -> Iterator[Leader]:
        """Yield each new writable leader (name, term) until ``close``; raises
        ``NoLeader`` when none is known for ``timeout`` seconds in a row."""
        seen: tuple[str, int] | None = None
        while not self._stop.is_set():
            lead = self.wait_writable(timeout, not_term=seen[1] if seen else 0)
            if (lead.name, lead.term) != seen:
                seen = (lead.name, lead.term)
                yield lead

    def _set(self, leader: Leader | None) -> None:
        with self._cond:
            if leader != self._leader:
                self._leader = leader
                self._version += 1
                self._cond.notify_all()

    def _run(self) -> None:
        i, attempt = 0, 0
        while not self._stop.is_set():
            address = self.addresses[i % len(self.addresses)]
            channel = grpcutil.channel(address)
            try:
                self._stream = cluster_pb2_grpc.ClusterStub(channel).WatchLeader(cluster_pb2.WatchLeaderRequest())
                for msg in self._stream:
                    attempt = 0
                    self._set(Leader.from_pb(msg))
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    break
                self.last_error = f"{address}: {exc.code().name}"
                log.debug("leader stream broke: %s", self.last_error)
            finally:
                channel.close()
            i += 1
            self._stop.wait(backoff_delay(attempt, self.backoff_initial, self.backoff_cap, self.rand))
            attempt += 1


def connect(orchestrators: Sequence[str], timeout: float = 10.0, **kw) -> LeaderFollower:
    """A started ``LeaderFollower`` that already knows a writable leader;
    raises ``NoLeader`` (and stops it) when none appears within ``timeout``."""
    follower = LeaderFollower(orchestrators, **kw).start()
    try:
        follower.wait_writable(timeout)
    except NoLeader:
        follower.close()
        raise
    return follower


class StoreWriter:
    """Writes to the embedded engine's ``Store`` on the current writable
    leader. ``put`` returns once a leader acknowledged the write, or once a
    writable leader is found to hold the value after an attempt whose
    outcome was unknown (read-back: then the write is not sent twice); it
    raises ``NoLeader`` when ``deadline_s`` passes first, and the server's
    error for a refused write (INVALID_ARGUMENT, ...)."""

    def __init__(self, leaders: LeaderFollower, deadline_s: float = 30.0, call_timeout_s: float = 2.0,
                 level: store_pb2.CommitLevel = store_pb2.COMMIT_DEFAULT,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.leaders = leaders
        self.deadline_s, self.call_timeout_s, self.level, self.sleep = deadline_s, call_timeout_s, level, sleep
        self._channels: dict[str, grpc.Channel] = {}
        self.retries = 0              # attempts after the first, over this writer's life
        self.read_back_hits = 0       # unknown outcomes that the next leader turned out to hold

    def _stub(self, address: str) -> store_pb2_grpc.StoreStub:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = grpcutil.channel(address)
        return store_pb2_grpc.StoreStub(ch)

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def put(self, key: bytes, value: bytes) -> Leader:
        """Write ``key`` = ``value``; returns the leader that holds it."""
        deadline = self.leaders.clock() + self.deadline_s
        unknown = False         # an earlier attempt may have been applied
        attempt = 0
        while True:
            left = deadline - self.leaders.clock()
            lead = self.leaders.wait_writable(max(0.0, left))
            stub = self._stub(lead.data_address)
            timeout = max(0.05, min(self.call_timeout_s, left))
            try:
                if unknown:
                    got = stub.Get(store_pb2.GetRequest(key=key), timeout=timeout)
                    if got.found and got.value == value and got.role == "primary":
                        self.read_back_hits += 1
                        return lead
                stub.Put(store_pb2.PutRequest(key=key, value=value, level=self.level), timeout=timeout)
                return lead
            except grpc.RpcError as exc:
                if exc.code() not in _UNKNOWN_OUTCOME and exc.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                unknown = unknown or exc.code() in _UNKNOWN_OUTCOME
            self.retries += 1
            if self.leaders.clock() >= deadline:
                raise NoLeader(f"write of {key!r} not acknowledged within {self.deadline_s:g}s")
            self.sleep(backoff_delay(attempt, 0.02, 0.5, self.leaders.rand))
            attempt += 1


__all__ = ["Leader", "LeaderFollower", "NoLeader", "StoreWriter", "backoff_delay", "connect"]
