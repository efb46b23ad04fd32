"""The drill workload: writer threads that write unique keys to whoever is
the leader (per the orchestrators' WatchLeader/GetLeader) and record every
acknowledged write with its monotonic ack time.

Backends are engine-specific but tiny: ``write(key, value) -> term`` raises
``WriteFailed`` on anything but an acknowledgement; ``read(keys) -> {key: value}``
reads keys back. The embedded one speaks the Store gRPC; the PostgreSQL one
wraps ``tools.drill.pg_backend``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import store_pb2, store_pb2_grpc
from walrus_ha.tools.drill.checker import Ack
from walrus_ha.tools.localcluster.client import ClusterClient, fast_channel


class WriteFailed(WalrusError):
    """The write was not acknowledged (refused, timed out, unreachable)."""


class Backend(Protocol):
    def write(self, key: str, value: str) -> int: ...
    def read(self, keys: list[str]) -> dict[str, str]: ...
    def close(self) -> None: ...


class EmbeddedBackend:
    """Writes through the embedded engine's Store gRPC at ``address``.

    The short default timeout keeps a writer stuck on a hung primary from
    hiding the new one for long (it bounds the RTO's measuring error)."""

    def __init__(self, address: str, sync: bool, timeout_s: float = 0.5):
        self.address = address
        self.level = store_pb2.COMMIT_ON if sync else store_pb2.COMMIT_DEFAULT
        self.timeout_s = timeout_s
        self._channel = fast_channel(address)
        self._stub = store_pb2_grpc.StoreStub(self._channel)

    def write(self, key: str, value: str) -> int:
        try:
            reply = self._stub.Put(store_pb2.PutRequest(key=key.encode(), value=value.encode(), level=self.level),
                                   timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise WriteFailed(f"{self.address}: {exc.code().name}: {exc.details()}") from None
        return reply.term

    def read(self, keys: list[str]) -> dict[str, str]:
        """key -> value of the ``keys`` present (on a standby: as replayed so far)."""
        found = {}
        for key in keys:
            try:
                reply = self._stub.Get(store_pb2.GetRequest(key=key.encode()), timeout=5.0)
            except grpc.RpcError as exc:
                raise WalrusError(f"read-back from {self.address} failed: {exc.code().name}: {exc.details()}") \
                    from None
            if reply.found:
                found[key] = reply.value.decode(errors="replace")
        return found

    def close(self) -> None:
        self._channel.close()


class PostgresBackend:
    """Adapter over ``tools.drill.pg_backend`` (written with the postgres engine)."""

    def __init__(self, address: str, sync: bool, timeout_s: float = 2.0):
        from walrus_ha.tools.drill import pg_backend  # lazy: psycopg only when needed
        cls = getattr(pg_backend, "PgWriter", None) or getattr(pg_backend, "PgBackend", None)
        if cls is None:
            raise WalrusError("tools.drill.pg_backend has no writer class (PgWriter/PgBackend)")
        self.address = address
        self._impl = cls(address)

    def write(self, key: str, value: str) -> int:
        """The timeline that acknowledged (the checker's term for PostgreSQL)."""
        try:
            return int(self._impl.write(key, value) or 0)
        except Exception as exc:   # psycopg errors of every kind mean "not acknowledged"
            raise WriteFailed(f"{self.address}: {exc}") from None

    def read(self, keys: list[str]) -> dict[str, str]:
        return self._impl.read_values(keys)

    def close(self) -> None:
        close = getattr(self._impl, "close", None)
        if close:
            close()


BackendFactory = Callable[[str], Backend]


def backend_factory(engine: str, sync: bool) -> BackendFactory:
    """A function ``address -> Backend`` for the engine."""
    cls = EmbeddedBackend if engine == "embedded" else PostgresBackend
    return lambda address: cls(address, sync)


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    term: int


class LeaderTracker:
    """Keeps the current *writable* leader from a WatchLeader stream (with
    GetLeader as a fallback when writers report failures): a leader the
    stream names but does not call writable yet (still taking leadership)
    is no target, so writers wait instead of collecting errors. ``changes``
    logs (monotonic time, Target or None) for reports."""

    def __init__(self, client: ClusterClient):
        self.client = client
        self._target: Target | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_poll = 0.0
        self.changes: list[tuple[float, Target | None]] = []
        self.listeners: list[Callable[[float, Target | None], None]] = []
        self._thread = threading.Thread(target=self._watch, name="leader-watch", daemon=True)

    def start(self) -> LeaderTracker:
        self.refresh(force=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def current(self) -> Target | None:
        with self._lock:
            return self._target

    def _set(self, leader) -> None:
        target = Target(leader.name, leader.data_address, leader.term) if leader.present and leader.writable \
            else None
        with self._lock:
            if target == self._target:
                return
            self._target = target
            now = time.monotonic()
            self.changes.append((now, target))
        for listener in self.listeners:
            listener(now, target)

    def _watch(self) -> None:
        for leader in self.client.watch_leader(self._stop):
            self._set(leader)

    def refresh(self, force: bool = False) -> None:
        """GetLeader, at most every 100 ms unless forced; errors are ignored."""
        now = time.monotonic()
        if not force and now - self._last_poll < 0.1:
            return
        self._last_poll = now
        try:
            self._set(self.client.get_leader())
        except WalrusError:
            pass


class Workload:
    """``writers`` threads writing ``<prefix>-<writer>-<seq>`` keys (value
    ``v<seq>``) to the leader; every acknowledgement is recorded as an
    ``Ack`` with the term the engine answered with."""

    def __init__(self, tracker: LeaderTracker, factory: BackendFactory, prefix: str,
                 writers: int = 2, pause_s: float = 0.005, sync: bool = False, value_size: int = 0):
        self.tracker = tracker
        self.value_size = value_size   # pad values to this many bytes (0: just "v<seq>")
        self.sync = sync        # the writes ask for a synchronous commit level (recorded in each Ack)
        self.factory = factory
        self.prefix = prefix
        self.pause_s = pause_s
        self.acks: list[Ack] = []
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._backends: dict[tuple[int, str], Backend] = {}
        self._threads = [threading.Thread(target=self._writer, args=(i,), name=f"writer-{i}", daemon=True)
                         for i in range(writers)]

    def start(self) -> Workload:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        for b in self._backends.values():
            b.close()

    def snapshot(self) -> list[Ack]:
        with self._lock:
            return list(self.acks)

    def _backend(self, wid: int, address: str) -> Backend:
        # One backend per writer and address: a PostgreSQL connection is not shared between threads.
        with self._lock:
            b = self._backends.get((wid, address))
            if b is None:
                b = self._backends[(wid, address)] = self.factory(address)
            return b

    def _writer(self, wid: int) -> None:
        seq = 0
        while not self._stop.is_set():
            target = self.tracker.current()
            if target is None:
                self.tracker.refresh()
                self._stop.wait(0.01)
                continue
            seq += 1
            key = f"{self.prefix}-{wid}-{seq}"
            sent = time.monotonic()
            try:
                value = f"v{seq}".ljust(self.value_size, "x")
                term = self._backend(wid, target.address).write(key, value)
            except WriteFailed:
                with self._lock:
                    self.failures += 1
                self.tracker.refresh()
                self._stop.wait(0.01)
                continue
            at = time.monotonic()
            with self._lock:
                self.acks.append(Ack(key, at, target.name, term, value, self.sync, sent))
            if self.pause_s:
                self._stop.wait(self.pause_s)


class StaleWriter(threading.Thread):
    """Writes to one fixed node (the old primary) with a long timeout, so a
    request stuck in a frozen primary is answered after it thaws. Any ack it
    gets after the new primary acknowledged something is split brain."""

    def __init__(self, backend: Backend, node: str, prefix: str):
        super().__init__(name="stale-writer", daemon=True)
        self.backend, self.node, self.prefix = backend, node, prefix
        self.acks: list[Ack] = []
        self._halt = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self._halt.is_set():
            seq += 1
            key = f"{self.prefix}-stale-{seq}"
            try:
                term = self.backend.write(key, "stale")
            except WriteFailed:
                self._halt.wait(0.05)
                continue
            self.acks.append(Ack(key, time.monotonic(), self.node, term, "stale"))
            self._halt.wait(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=15)
        self.backend.close()
