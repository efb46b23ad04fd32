"""Small gRPC helpers shared by every client and server in walrus.

* ``channel(address)``: an insecure channel with keepalive settings that
  notice a dead peer within seconds.
* ``server(max_workers)``: a ``grpc.server`` with a thread pool. Both
  servers answer undecodable request bytes INVALID_ARGUMENT (``grpc_guard``).
* ``aio_server(max_workers)``: a ``grpc.aio.server`` (create it on its event
  loop) whose non-async methods run in a thread pool of ``max_workers``.
* ``call_with_retry(fn, deadline_s)``: retry UNAVAILABLE only, under a
  deadline, with jittered exponential backoff (tenacity); never forever.
* ``is_connection_refused(exc, address)``: did the call fail because the
  peer's port refuses TCP connections (provably down)? Asked of the socket
  (``connect_refused``), never of the message. Turning a failed call into the
  project's exception is ``common.rpcerrors`` (by reason code).
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import TypeVar

import grpc
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from walrus_ha.common import grpc_guard
from walrus_ha.common.rpcerrors import Reason, reason_of

T = TypeVar("T")

# Bound of the TCP connect that tells "refused" from "timed out": a refusal
# comes back within one round trip; waiting longer only delays a verdict of
# "not proven down".
CONNECT_PROBE_S = 0.5

_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
_SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


def channel(address: str, options: list[tuple[str, object]] | None = None) -> grpc.Channel:
    """An insecure channel to ``host:port`` with keepalives (not connected yet)."""
    return grpc.insecure_channel(address, options=_KEEPALIVE + list(options or []))


def aio_channel(address: str, options: list[tuple[str, object]] | None = None) -> grpc.aio.Channel:
    """``channel`` for grpc.aio (create it on the event loop that uses it)."""
    return grpc.aio.insecure_channel(address, options=_KEEPALIVE + list(options or []))


def server(max_workers: int = 16, interceptors: Sequence[grpc.ServerInterceptor] = ()) -> grpc.Server:
    """A grpc server with a thread pool of ``max_workers`` (add ports yourself);
    ``interceptors`` run outside ``grpc_guard`` (e.g. ``metrics.RpcErrors``)."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                       options=_SERVER_OPTIONS, maximum_concurrent_rpcs=None,
                       interceptors=[*interceptors, grpc_guard.DecodeGuard()])


def aio_server(max_workers: int = 16) -> grpc.aio.Server:
    """A grpc.aio server with the same options as ``server``; sync handlers
    (plain functions and generators) run in a pool of ``max_workers``."""
    return grpc.aio.server(migration_thread_pool=futures.ThreadPoolExecutor(max_workers=max_workers),
                           options=_SERVER_OPTIONS, maximum_concurrent_rpcs=None,
                           interceptors=[grpc_guard.AioDecodeGuard()])


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and exc.code() in (
        grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def call_with_retry(fn: Callable[[], T], deadline_s: float) -> T:
    """Call ``fn`` and retry while it fails UNAVAILABLE, for at most ``deadline_s``."""
    for attempt in Retrying(stop=stop_after_delay(deadline_s),
                            wait=wait_random_exponential(multiplier=0.05, max=1.0),
                            retry=retry_if_exception(is_unavailable), reraise=True):
        with attempt:
            return fn()
    raise AssertionError("unreachable")


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError if malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not host:port: {address!r}")
    return host.strip("[]"), int(port)


def connect_refused(address: str, timeout_s: float = CONNECT_PROBE_S) -> bool:
    """True only if a TCP connect to ``address`` is actively refused
    (ECONNREFUSED: nothing listens there) on every address its host resolves
    to, each attempt within ``timeout_s`` in all. Anything else (accepted,
    timed out, unreachable, unresolvable) is False: it proves nothing."""
    try:
        host, port = split_address(address)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError):
        return False
    deadline = time.monotonic() + timeout_s
    for family, socktype, proto, _, sockaddr in infos:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(left)              # a non-blocking connect, bounded
            try:
                sock.connect(sockaddr)
            except ConnectionRefusedError:
                continue
            except OSError:
                return False
            return False                       # something listens there
    return bool(infos)


def is_connection_refused(exc: BaseException, address: str, timeout_s: float = CONNECT_PROBE_S) -> bool:
    """True only if ``exc`` is an UNAVAILABLE call to ``address`` that no
    walrus server answered and whose port now actively refuses a TCP
    connection (``connect_refused``): the peer is provably down.

    Decided from the connect error itself, never from gRPC's message text.
    A hung peer (SIGSTOP, blackholed, a socket that never answers) shows up
    as DEADLINE_EXCEEDED, or its kernel still accepts the connect, and a
    server's own refusal carries a reason code: all three are False here
    (docs/design.md safety 5, fast path). A refused connect to a local or
    LAN port fails within a round trip, so the fast path stays fast.
    """
    if not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return False
    if exc.code() is not grpc.StatusCode.UNAVAILABLE or reason_of(exc) is not Reason.UNSPECIFIED:
        return False
    return connect_refused(address, timeout_s)
