"""grpcutil.is_connection_refused: a closed port vs a peer that hangs (real
sockets), decided by a TCP connect to the peer, never by gRPC's message text."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from walrus_ha.common import grpcutil, rpcerrors
from walrus_ha.orchestrator.agents import classify
from walrus_ha.orchestrator.probe import ProbeOutcome
from walrus_ha.tools.etcd_server import free_port

pytestmark = pytest.mark.timeout(60)

SERVER = """
import time
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2_grpc
s = grpc.server(futures.ThreadPoolExecutor(2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), s)
port = s.add_insecure_port("127.0.0.1:0")
s.start()
print(port, flush=True)
time.sleep(600)
"""


def check(address: str, timeout: float = 1.0) -> grpc.RpcError | None:
    with grpcutil.channel(address) as ch:
        try:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return None
        except grpc.RpcError as exc:
            return exc


@pytest.fixture
def health_server():
    """A real gRPC server in a child process; yields (process, address); killed by PID."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(10)


def test_closed_port_is_refused():
    address = f"127.0.0.1:{free_port()}"
    exc = check(address)
    assert exc is not None and exc.code() is grpc.StatusCode.UNAVAILABLE
    assert grpcutil.is_connection_refused(exc, address)
    assert grpcutil.connect_refused(address) and grpcutil.connect_refused(f"localhost:{address.split(':')[1]}")


def test_listening_socket_that_never_answers_is_not_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        exc = check(address)
        assert exc is not None and exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert not grpcutil.is_connection_refused(exc, address)
        assert not grpcutil.connect_refused(address)


def test_stopped_server_is_not_refused_but_killed_server_is(health_server):
    proc, address = health_server
    assert check(address) is None
    os.kill(proc.pid, signal.SIGSTOP)          # hung: the kernel still accepts connections
    exc = check(address)
    assert exc is not None and not grpcutil.is_connection_refused(exc, address)
    assert classify(exc, address) is ProbeOutcome.TIMEOUT
    os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait(10)
    exc = check(address)
    assert exc is not None and grpcutil.is_connection_refused(exc, address)
    assert classify(exc, address) is ProbeOutcome.REFUSED


@pytest.mark.parametrize("error", [ValueError("x"), None])
def test_non_grpc_errors_are_not_refused(error):
    assert not grpcutil.is_connection_refused(error, f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize("details", ["failed to connect to all addresses; last error: "
                                     "UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
                                     "Connection refused", "Socket closed", ""])
def test_the_connect_decides_not_the_words(details):
    """The same UNAVAILABLE error, whatever its text: refused only when the port refuses now."""
    closed = f"127.0.0.1:{free_port()}"
    assert grpcutil.is_connection_refused(_Status(grpc.StatusCode.UNAVAILABLE, details), closed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        listening = f"127.0.0.1:{sock.getsockname()[1]}"
        assert not grpcutil.is_connection_refused(_Status(grpc.StatusCode.UNAVAILABLE, details), listening)


def test_an_answer_with_a_reason_is_never_refused():
    # A walrus server said UNAVAILABLE itself (e.g. fenced): it is up, whatever the port does now.
    fenced = _Status(grpc.StatusCode.UNAVAILABLE, "fenced", rpcerrors.trailers(rpcerrors.Reason.FENCED))
    assert not grpcutil.is_connection_refused(fenced, f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize("address", ["", "nohost", "127.0.0.1:", "127.0.0.1:x", "no-such-host.invalid:80"])
def test_an_address_that_cannot_be_connected_proves_nothing(address):
    assert not grpcutil.connect_refused(address, timeout_s=2)


class _Status(grpc.RpcError):
    def __init__(self, code, details=None, trailing=()):
        self._code, self._details, self._trailing = code, details, trailing

    def code(self):
        return self._code

    def details(self):
        return self._code.name if self._details is None else self._details

    def trailing_metadata(self):
        return self._trailing


@pytest.mark.parametrize("code,retried", [
    (grpc.StatusCode.UNAVAILABLE, True), (grpc.StatusCode.DEADLINE_EXCEEDED, True),
    (grpc.StatusCode.FAILED_PRECONDITION, False), (grpc.StatusCode.INVALID_ARGUMENT, False),
])
def test_call_with_retry_retries_only_unreachable(code, retried):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise _Status(code)
        return "ok"

    if retried:
        assert grpcutil.call_with_retry(fn, deadline_s=10) == "ok" and len(calls) == 3
    else:
        with pytest.raises(grpc.RpcError):
            grpcutil.call_with_retry(fn, deadline_s=10)
        assert len(calls) == 1


def test_call_with_retry_gives_up_on_a_closed_port():
    address = f"127.0.0.1:{free_port()}"
    with grpcutil.channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            grpcutil.call_with_retry(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=0.2),
                                     deadline_s=0.5)
    assert grpcutil.is_connection_refused(info.value, address)
