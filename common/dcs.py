"""etcd access: the only module that talks to etcd (docs/design.md, docs/internals.md).

The one rule: every vendor error (gRPC status, etcd3 exception) stops here
and leaves as ``DcsUnavailable`` or ``LeaseLost``; retries happen only here,
only for "could not reach etcd" errors, and only until the caller's deadline
(``deadline_s``, default ``timeout_s``). Values are JSON; keys come from
``common.keyspace.Keyspace``.

We drive etcd's generated gRPC stubs (``etcd3.etcdrpc``) on our own channels
rather than python-etcd3's client object, because that client marks an
endpoint failed for five minutes after one error, closes watchers on
unrelated errors and has no per-call deadline.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import grpc
import tenacity
from etcd3 import etcdrpc

from walrus_ha.common.dcs_watch import PrefixWatch
from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.keyspace import Keyspace
from walrus_ha.common.log import log_event
from walrus_ha.common.records import (
    ClusterView,
    HistoryRecord,
    LeaderRecord,
    MalformedRecord,
    MemberRecord,
    SyncRecord,
    _Record,
    build_view,
    parse_json,
)

log = logging.getLogger(__name__)

# gRPC codes that mean "this endpoint did not answer": retried on the next one.
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

# Reconnect quickly after an etcd restart (gRPC's default backoff grows to 2
# minutes); keepalive pings notice a silent peer on long-lived watch streams
# (etcd refuses pings more often than every 5 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
]

_EQ = etcdrpc.Compare.EQUAL


class _Transient(Exception):
    """Internal: one attempt could not reach etcd; retry on the next endpoint."""


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """``"h1:p1,h2:p2"`` or a list, with or without ``http://`` -> ``["h:p", ...]``."""
    if isinstance(endpoints, str):
        endpoints = endpoints.split(",")
    out = []
    for ep in endpoints:
        ep = ep.strip().removeprefix("http://").rstrip("/")
        host, sep, port = ep.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"etcd endpoint {ep!r} is not host:port")
        out.append(ep)
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


def encode(value: Any) -> bytes:
    """How a value is stored: bytes as-is, records via ``to_json()``, anything else ``json.dumps``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, _Record):
        return value.to_json().encode()
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _prefix_end(prefix: bytes) -> bytes:
    """The etcd range end that covers every key starting with ``prefix``."""
    b = bytearray(prefix)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return b"\0"
    b[-1] += 1
    return bytes(b)


def cmp(key: str, target: str, value: Any) -> etcdrpc.Compare:
    """``target`` in version/mod/value/lease; EQUAL comparison."""
    c = etcdrpc.Compare(key=key.encode(), result=_EQ, target=getattr(etcdrpc.Compare, target.upper()))
    if target == "version":
        c.version = value
    elif target == "mod":
        c.mod_revision = value
    elif target == "lease":
        c.lease = value
    else:
        c.value = encode(value) if not isinstance(value, bytes) else value
    return c


def op_put(key: str, value: Any, lease: int = 0) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key.encode(), value=encode(value), lease=lease))


def op_get(key: str, range_end: bytes | None = None) -> etcdrpc.RequestOp:
    req = etcdrpc.RangeRequest(key=key.encode())
    if range_end is not None:
        req.range_end = range_end
    return etcdrpc.RequestOp(request_range=req)


def op_delete(key: str) -> etcdrpc.RequestOp:
    return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=key.encode()))


class _Endpoint:
    """One etcd endpoint: a channel and its stubs."""

    def __init__(self, address: str):
        self.address = address
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.kv = etcdrpc.KVStub(self.channel)
        self.lease = etcdrpc.LeaseStub(self.channel)
        self.watch = etcdrpc.WatchStub(self.channel)

    def close(self) -> None:
        self.channel.close()


class Dcs:
    """Typed access to one cluster's keys in etcd.

    ``Dcs(endpoints, cluster, timeout_s)``: ``endpoints`` are ``host:port``
    strings (tried in order, failing over to the next on error);
    ``timeout_s`` bounds one RPC and is the default deadline of a call.
    Every method takes ``deadline_s`` (keyword): the total time allowed,
    retries included. Raises ``DcsUnavailable`` when etcd could not be
    reached in time, ``LeaseLost`` when a lease the call needs is gone.
    Thread-safe.
    """

    def __init__(self, endpoints: str | Sequence[str], cluster: str, timeout_s: float = 2.0):
        self.keys = Keyspace(cluster)
        self.timeout_s = timeout_s
        self._addresses = parse_endpoints(endpoints)
        self._endpoints: list[_Endpoint | None] = [None] * len(self._addresses)
        self._current = 0
        self._lock = threading.Lock()
        self._watches: list[PrefixWatch] = []
        self._closed = False
        self._fanout: concurrent.futures.ThreadPoolExecutor | None = None   # lease renewals (``_ask_all``)

    # -- plumbing -----------------------------------------------------------
    def endpoint(self, index: int | None = None) -> _Endpoint:
        """The endpoint in use (or ``index``), creating its channel lazily."""
        with self._lock:
            if self._closed:
                raise DcsUnavailable("Dcs is closed")
            i = self._current if index is None else index % len(self._addresses)
            ep = self._endpoints[i]
            if ep is None:
                ep = self._endpoints[i] = _Endpoint(self._addresses[i])
            return ep

    def _failed(self, ep: _Endpoint) -> None:
        with self._lock:
            if self._endpoints[self._current] is ep and len(self._addresses) > 1:
                self._current = (self._current + 1) % len(self._addresses)

    def call(self, what: str, fn: Callable[[_Endpoint, float], Any], deadline_s: float | None = None) -> Any:
        """Run ``fn(endpoint, rpc_timeout)`` with retries until the deadline.

        Only "unreachable" errors are retried (on the next endpoint, with
        jittered exponential backoff); lease-not-found becomes LeaseLost at
        once; anything else becomes DcsUnavailable at once. Note: an attempt
        that timed out may still have been applied; ``acquire_leader``,
        ``campaign`` and ``claim_initialize`` recognise their own earlier
        success, a plain ``cas_put`` retried that way reports False.
        """
        budget = self.timeout_s if deadline_s is None else deadline_s
        deadline = time.monotonic() + budget
        per_attempt = self._per_attempt(budget)

        last_error = ["none"]

        def attempt() -> Any:
            remaining = deadline - time.monotonic()
            if remaining <= 0.005:
                raise _Transient("deadline reached")
            try:
                return self._attempt(what, self.endpoint(), fn, min(per_attempt, remaining))
            except _Transient as exc:
                last_error[0] = str(exc)
                raise

        backoff = tenacity.wait_random_exponential(multiplier=0.05, max=0.5)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(budget),
            wait=lambda rs: max(0.0, min(backoff(rs), deadline - time.monotonic())),
            retry=tenacity.retry_if_exception_type(_Transient), reraise=True)
        try:
            return retrying(attempt)
        except _Transient:
            raise DcsUnavailable(f"{what}: etcd unreachable within {budget:g}s (last error: {last_error[0]})") from None

    def _per_attempt(self, budget: float) -> float:
        """One attempt's timeout: a share of the budget per endpoint, at most ``timeout_s``."""
        return max(0.05, min(self.timeout_s, budget / len(self._addresses)))

    def _attempt(self, what: str, ep: _Endpoint, fn: Callable[[_Endpoint, float], Any], timeout: float) -> Any:
        """``fn(ep, timeout)`` with its errors mapped: unreachable -> ``_Transient``
        (and the next endpoint becomes current), lease not found -> LeaseLost,
        anything else -> DcsUnavailable."""
        try:
            return fn(ep, timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code in _TRANSIENT:
                self._failed(ep)
                raise _Transient(f"{ep.address}: {code.name} {details}") from None
            if code == grpc.StatusCode.NOT_FOUND and "lease" in details:
                raise LeaseLost(f"{what}: {details}") from None
            raise DcsUnavailable(f"{what}: etcd refused: {code.name} {details}") from None
        except ValueError as exc:   # grpc: "Cannot invoke RPC on closed channel!" (close() raced us)
            raise DcsUnavailable(f"{what}: {exc}") from None

    def _ask_all(self, what: str, fn: Callable[[_Endpoint, float], Any], deadline: float,
                 cancel_all: Callable[[], None]) -> Any:
        """``fn`` on every endpoint at once, each until ``deadline``; the first
        answer wins and ``cancel_all()`` ends the others. For idempotent calls
        only (a lease renewal): when the member in use died or is waiting for a
        new raft leader, the renewal lands the moment any member can answer,
        instead of after timeouts and back-off on one member after another.
        Rounds again (short pause) while every endpoint fails fast, until the
        deadline; then DcsUnavailable. LeaseLost / DcsUnavailable as ``_attempt``."""
        with self._lock:
            if self._closed:
                raise DcsUnavailable("Dcs is closed")
            if self._fanout is None:
                self._fanout = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2 * len(self._addresses), thread_name_prefix="dcs-ask-all")
            pool = self._fanout
        errors: list[str] = []
        try:
            while (remaining := deadline - time.monotonic()) > 0.005:
                futures = [pool.submit(self._attempt, what, self.endpoint(i), fn, remaining)
                           for i in range(len(self._addresses))]
                try:
                    for fut in concurrent.futures.as_completed(futures, timeout=remaining):
                        try:
                            return fut.result()
                        except _Transient as exc:
                            errors.append(str(exc))
                except concurrent.futures.TimeoutError:
                    break
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        except RuntimeError as exc:     # the pool was shut down: close() raced us
            raise DcsUnavailable(f"{what}: {exc}") from None
        finally:
            cancel_all()
        raise _Transient(errors[-1] if errors else "deadline reached")

    def _txn(self, what: str, compare: list, success: list, failure: Sequence[Any] = (),
             deadline_s: float | None = None) -> etcdrpc.TxnResponse:
        req = etcdrpc.TxnRequest(compare=compare, success=success, failure=list(failure))
        return self.call(what, lambda ep, t: ep.kv.Txn(req, timeout=t), deadline_s)

    def _get(self, key: str, deadline_s: float | None = None):
        """(value bytes, kv) or (None, None)."""
        req = etcdrpc.RangeRequest(key=key.encode())
        resp = self.call(f"get {key}", lambda ep, t: ep.kv.Range(req, timeout=t), deadline_s)
        return (resp.kvs[0].value, resp.kvs[0]) if resp.kvs else (None, None)

    def close(self) -> None:
        """Cancel watches and close every channel. Idempotent."""
        for w in list(self._watches):
            w.cancel()
        with self._lock:
            self._closed = True
            endpoints, self._endpoints = self._endpoints, [None] * len(self._addresses)
            pool, self._fanout = self._fanout, None
        for ep in endpoints:
            if ep is not None:
                ep.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Dcs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leases -------------------------------------------------------------
    def grant_lease(self, ttl: float, *, deadline_s: float | None = None) -> int:
        """Grant a lease of ``ttl`` seconds (rounded up to whole seconds); returns its id."""
        req = etcdrpc.LeaseGrantRequest(TTL=max(1, math.ceil(ttl)), ID=0)
        resp = self.call("grant lease", lambda ep, t: ep.lease.LeaseGrant(req, timeout=t), deadline_s)
        if resp.error:
            raise DcsUnavailable(f"grant lease: {resp.error}")
        return resp.ID

    def refresh_lease(self, lease_id: int, *, deadline_s: float | None = None) -> float:
        """Keep the lease alive once; returns the remaining TTL in seconds.

        Raises LeaseLost if etcd reports the lease gone (TTL <= 0: expired or
        revoked), DcsUnavailable if no refresh succeeded by the deadline.
        Never retried past ``deadline_s``: the agent's fencing depends on it.

        First the member in use (one attempt's share of the budget, at most
        0.5 s); if it does not answer, every member at once until the deadline
        (``_ask_all``): a member that died, or one waiting for a new raft
        leader after the old one died, costs no more than the election.
        """
        what = f"refresh lease {lease_id:x}"
        budget = self.timeout_s if deadline_s is None else deadline_s
        deadline = time.monotonic() + budget
        streams: list[Any] = []
        streams_lock = threading.Lock()

        def keepalive(ep: _Endpoint, timeout: float) -> float:
            stream = ep.lease.LeaseKeepAlive(iter([etcdrpc.LeaseKeepAliveRequest(ID=lease_id)]), timeout=timeout)
            with streams_lock:
                streams.append(stream)
            try:
                resp = next(stream, None)
            finally:
                stream.cancel()
            if resp is None:
                raise _Transient(f"{ep.address}: keepalive stream closed without an answer")
            return resp.TTL

        def cancel_all() -> None:
            with streams_lock:
                for stream in streams:
                    stream.cancel()

        try:
            # A live member answers in milliseconds; past 0.5 s ask everyone (this one too).
            ttl = self._attempt(what, self.endpoint(), keepalive, min(self._per_attempt(budget), 0.5))
        except _Transient as first:
            try:
                ttl = self._ask_all(what, keepalive, deadline, cancel_all)
            except _Transient as last:
                raise DcsUnavailable(f"{what}: etcd unreachable within {budget:g}s (first error: {first}; "
                                     f"last error: {last})") from None
        if ttl <= 0:
            raise LeaseLost(f"lease {lease_id:x} expired or was revoked")
        return float(ttl)

    def revoke_lease(self, lease_id: int, *, deadline_s: float | None = None) -> None:
        """Revoke a lease (deleting its keys). Already gone is fine."""
        req = etcdrpc.LeaseRevokeRequest(ID=lease_id)
        try:
            self.call(f"revoke lease {lease_id:x}", lambda ep, t: ep.lease.LeaseRevoke(req, timeout=t), deadline_s)
        except LeaseLost:
            pass

    # -- members ------------------------------------------------------------
    def put_member(self, lease_id: int, record: MemberRecord, *, deadline_s: float | None = None) -> None:
        """Write ``members/<name>`` bound to the lease. LeaseLost if the lease is gone."""
        req = etcdrpc.PutRequest(key=self.keys.member(record.name).encode(), value=encode(record), lease=lease_id)
        self.call(f"put member {record.name}", lambda ep, t: ep.kv.Put(req, timeout=t), deadline_s)

    def put_leased(self, key: str, value: bytes, lease_id: int, what: str, *,
                   deadline_s: float | None = None) -> None:
        """Write ``key`` bound to the lease. LeaseLost if the lease is gone."""
        req = etcdrpc.PutRequest(key=key.encode(), value=value, lease=lease_id)
        self.call(what, lambda ep, t: ep.kv.Put(req, timeout=t), deadline_s)

    def read_prefix_and_key(self, prefix: str, key: str, *, deadline_s: float | None = None
                            ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """One read: every (key, value) under ``prefix`` (ending in "/") and ``key``'s value (None if absent)."""
        req = etcdrpc.TxnRequest(success=[op_get(prefix, prefix.encode()[:-1] + b"0"), op_get(key)])
        resp = self.call(f"read {prefix}", lambda ep, t: ep.kv.Txn(req, timeout=t), deadline_s)
        one = resp.responses[1].response_range.kvs
        return ([(kv.key, kv.value) for kv in resp.responses[0].response_range.kvs],
                one[0].value if one else None)

    # -- leader -------------------------------------------------------------
    def acquire_leader(self, lease_id: int, record: LeaderRecord, expected_term: int, *,
                       deadline_s: float | None = None) -> int | None:
        """Become leader under term ``expected_term + 1``, in one transaction.

        Requires ``leader`` absent and ``term == expected_term`` (absent = 0);
        puts ``leader`` (bound to ``lease_id``, with the new term) and
        ``term``. Returns the new term, or None if refused. Idempotent: if the
        leader key is already ours (same lease, same new term) -- e.g. a
        retried attempt that had succeeded -- returns the new term.
        Raises LeaseLost if the lease is gone.
        """
        new_term = expected_term + 1
        rec = replace(record, term=new_term)
        k = self.keys
        term_cmp = cmp(k.term, "version", 0) if expected_term == 0 else cmp(k.term, "value", expected_term)
        resp = self._txn("acquire leader", [cmp(k.leader, "version", 0), term_cmp],
                         [op_put(k.leader, rec, lease_id), op_put(k.term, new_term)],
                         [op_get(k.leader)], deadline_s)
        if resp.succeeded:
            log_event(log, "leader acquired", name=rec.name, term=new_term)
            return new_term
        kvs = resp.responses[0].response_range.kvs
        if kvs and kvs[0].lease == lease_id:
            try:
                if LeaderRecord.from_json(kvs[0].value).term == new_term:
                    return new_term
            except MalformedRecord:
                pass
        return None

    def update_leader(self, lease_id: int, record: LeaderRecord, *, deadline_s: float | None = None) -> bool:
        """Rewrite ``leader`` only if it is still bound to ``lease_id``."""
        k = self.keys
        resp = self._txn("update leader", [cmp(k.leader, "lease", lease_id)],
                         [op_put(k.leader, record, lease_id)], (), deadline_s)
        return resp.succeeded

    def release_leader(self, lease_id: int, term: int, *, deadline_s: float | None = None) -> bool:
        """Delete ``leader`` only if bound to ``lease_id`` and ``term`` is still ``term``."""
        k = self.keys
        resp = self._txn("release leader", [cmp(k.leader, "lease", lease_id), cmp(k.term, "value", term)],
                         [op_delete(k.leader)], (), deadline_s)
        return resp.succeeded

    def revoke_leader_lease(self, expected_term: int, *, deadline_s: float | None = None) -> bool:
        """Fast path: revoke the lease ``leader`` is bound to, if ``term`` is still ``expected_term``.

        Returns True if a lease was revoked (or was already gone), False if
        there is no leader key or the term moved on.
        """
        k = self.keys
        resp = self._txn("read leader", [cmp(k.term, "value", expected_term)], [op_get(k.leader)], (), deadline_s)
        if not resp.succeeded:
            return False
        kvs = resp.responses[0].response_range.kvs
        if not kvs or not kvs[0].lease:
            return False
        self.revoke_lease(kvs[0].lease, deadline_s=deadline_s)
        log_event(log, "leader lease revoked", term=expected_term, lease=f"{kvs[0].lease:x}")
        return True

    # -- bootstrap, orchestrator election ----------------------------------
    def claim_initialize(self, name: str, *, deadline_s: float | None = None) -> bool:
        """Create ``initialize`` = name if absent. True if we hold it (now or already)."""
        return self._create_if_absent(self.keys.initialize, name, 0, deadline_s)

    def reseed(self, term: int, initialize: str, sync: SyncRecord | None = None, *,
               deadline_s: float | None = None) -> bool:
        """etcd lost its data: put ``term``, ``initialize`` (and ``sync`` if given)
        in one transaction that requires ``term`` and ``leader`` absent. True if done."""
        k = self.keys
        puts = [op_put(k.term, term), op_put(k.initialize, initialize)] + ([op_put(k.sync, sync)] if sync else [])
        resp = self._txn("reseed", [cmp(k.term, "version", 0), cmp(k.leader, "version", 0)], puts, (), deadline_s)
        if resp.succeeded:
            log_event(log, "keyspace reseeded", term=term, initialize=initialize, sync=bool(sync))
        return resp.succeeded

    def campaign(self, orch_id: str, lease_id: int, *, deadline_s: float | None = None) -> bool:
        """Create ``orchestrator`` = orch_id bound to the lease if absent. True if ours."""
        return self._create_if_absent(self.keys.orchestrator, orch_id, lease_id, deadline_s)

    def _create_if_absent(self, key: str, value: str, lease_id: int, deadline_s: float | None) -> bool:
        resp = self._txn(f"create {key}", [cmp(key, "version", 0)], [op_put(key, value, lease_id)],
                         [op_get(key)], deadline_s)
        if resp.succeeded:
            return True
        kvs = resp.responses[0].response_range.kvs
        return bool(kvs) and kvs[0].value == encode(value) and kvs[0].lease == lease_id

    # -- snapshot and watch -------------------------------------------------
    def read_view(self, *, deadline_s: float | None = None) -> ClusterView:
        """One consistent read (one revision) of the cluster prefix, history excluded."""
        k = self.keys
        prefix, hist = k.prefix.encode(), k.history_prefix.encode()
        ops = [op_get(k.prefix, hist), op_get(k.history_prefix, _prefix_end(prefix))]
        ops[1].request_range.key = _prefix_end(hist)
        resp = self._txn("read view", [], ops, (), deadline_s)
        items = [(kv.key, kv.value, kv.lease, kv.mod_revision) for r in resp.responses for kv in r.response_range.kvs]
        return build_view(k, resp.header.revision, items)

    def watch_prefix(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on every change under the cluster prefix; returns ``cancel()``.

        The watch survives etcd restarts and connection loss: it is
        re-established (on the next endpoint) and ``callback()`` is called
        once it is, so that the reader re-reads whatever it missed.
        """
        w = PrefixWatch(self, self.keys.prefix.encode(), _prefix_end(self.keys.prefix.encode()), callback)
        self._watches.append(w)
        w.start(self.timeout_s)

        def cancel() -> None:
            w.cancel()
            if w in self._watches:
                self._watches.remove(w)
        return cancel

    # -- generic keys ---------------------------------------------------------
    def cas_put(self, key: str, value: Any, mod_revision: int, *, deadline_s: float | None = None) -> bool:
        """Put only if the key's mod revision is ``mod_revision`` (0 = must be absent)."""
        check = cmp(key, "version", 0) if mod_revision == 0 else cmp(key, "mod", mod_revision)
        return self._txn(f"cas {key}", [check], [op_put(key, value)], (), deadline_s).succeeded

    def put(self, key: str, value: Any, *, deadline_s: float | None = None) -> int:
        """Unconditional put; returns the new revision."""
        req = etcdrpc.PutRequest(key=key.encode(), value=encode(value))
        return self.call(f"put {key}", lambda ep, t: ep.kv.Put(req, timeout=t), deadline_s).header.revision

    def get(self, key: str, *, deadline_s: float | None = None) -> tuple[Any, int]:
        """(parsed JSON value or None, mod revision or 0). Malformed JSON -> (None, rev)."""
        value, kv = self._get(key, deadline_s)
        if kv is None:
            return None, 0
        try:
            return parse_json(value), kv.mod_revision
        except MalformedRecord:
            return None, kv.mod_revision

    def delete(self, key: str, *, deadline_s: float | None = None) -> bool:
        """Delete a key; True if it existed."""
        req = etcdrpc.DeleteRangeRequest(key=key.encode())
        return self.call(f"delete {key}", lambda ep, t: ep.kv.DeleteRange(req, timeout=t), deadline_s).deleted > 0

    # -- cluster state helpers ------------------------------------------------
    def set_sync(self, record: SyncRecord, expected_mod_revision: int, *, deadline_s: float | None = None) -> bool:
        """Publish the synchronous standby set with compare-and-swap."""
        return self.cas_put(self.keys.sync, record, expected_mod_revision, deadline_s=deadline_s)

    def put_history(self, record: HistoryRecord, *, deadline_s: float | None = None) -> None:
        """Write ``history/<term>`` (overwrites: the writer for a term is the one active orchestrator)."""
        self.put(self.keys.history(record.term), record, deadline_s=deadline_s)

    def list_history(self, limit: int = 100, *, deadline_s: float | None = None) -> list[HistoryRecord]:
        """The last ``limit`` history records, oldest first (ascending term). Malformed ones are skipped."""
        hist = self.keys.history_prefix.encode()
        req = etcdrpc.RangeRequest(key=hist, range_end=_prefix_end(hist), limit=max(0, limit),
                                   sort_order=etcdrpc.RangeRequest.DESCEND,
                                   sort_target=etcdrpc.RangeRequest.KEY)
        resp = self.call("list history", lambda ep, t: ep.kv.Range(req, timeout=t), deadline_s)
        out = []
        for kv in reversed(resp.kvs):
            try:
                out.append(HistoryRecord.from_json(kv.value))
            except MalformedRecord as exc:
                log_event(log, "skip malformed key", logging.WARNING, key=kv.key.decode(errors="replace"),
                          problem=str(exc))
        return out

    def set_pause(self, paused: bool, *, deadline_s: float | None = None) -> None:
        """Pause (or resume) automatic failover for the cluster."""
        if paused:
            self.put(self.keys.pause, True, deadline_s=deadline_s)
        else:
            self.delete(self.keys.pause, deadline_s=deadline_s)

    def clear_switchover(self, *, deadline_s: float | None = None) -> bool:
        return self.delete(self.keys.switchover, deadline_s=deadline_s)

    def put_failover_state(self, state: dict, *, deadline_s: float | None = None) -> None:
        """Record the active orchestrator's in-flight failover so a successor can finish it."""
        self.put(self.keys.failover_state, state, deadline_s=deadline_s)

    def clear_failover_state(self, *, deadline_s: float | None = None) -> bool:
        return self.delete(self.keys.failover_state, deadline_s=deadline_s)

