"""common.rpcerrors: the one table exception -> (code, reason) and back, over
real gRPC servers (thread pool and grpc.aio); the message never classifies."""
from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from walrus_ha.common import errors, grpcutil, rpcerrors
from walrus_ha.common.rpcerrors import REASON_KEY, TABLE, Reason
from walrus_ha.node.agent import actions, convert
from walrus_ha.node.engine.embedded import store_service
from walrus_ha.protos import common_pb2

pytestmark = pytest.mark.timeout(60)

WORDS = "stale term; fenced; connection refused; needs a re-clone; rewind its unconfirmed tail; removed"
METHOD = "/walrus.test.Errors/Fail"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details="", trailing=()):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def test_reason_enum_mirrors_the_proto():
    assert {r.wire_name for r in Reason} == set(common_pb2.ErrorReason.keys())
    assert all(common_pb2.ErrorReason.Value(r.wire_name) == r.value for r in Reason)


def test_every_listed_exception_has_its_own_reason():
    reasons = [reason for _, _, reason in TABLE]
    assert len(reasons) == len(set(reasons))
    assert set(Reason) - set(reasons) == {Reason.UNSPECIFIED, Reason.INTERNAL}


@pytest.mark.parametrize("cls,code,reason", TABLE, ids=[c.__name__ for c, _, _ in TABLE])
def test_each_exception_round_trips_by_its_reason_whatever_the_words(cls, code, reason):
    assert rpcerrors.status_for(cls(WORDS)) == (code, reason)
    back = rpcerrors.error_from_rpc(FakeRpcError(code, WORDS, rpcerrors.trailers(reason)), "call")
    assert type(back) is cls and str(back) == f"call: {WORDS}"


@pytest.mark.parametrize("code", [grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.INTERNAL])
def test_words_without_a_reason_classify_as_nothing_in_particular(code):
    back = rpcerrors.error_from_rpc(FakeRpcError(code, WORDS), "call")
    assert type(back) is errors.WalrusError
    assert rpcerrors.reason_of(FakeRpcError(code, WORDS)) is Reason.UNSPECIFIED


def test_the_reason_wins_over_contradicting_words():
    exc = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, WORDS, rpcerrors.trailers(Reason.WRONG_ROLE))
    assert type(rpcerrors.error_from_rpc(exc, "write")) is errors.WrongRole


@pytest.mark.parametrize("value", ["ERROR_REASON_FROM_THE_FUTURE", "STALE_TERM", "", "3"])
def test_an_unknown_reason_name_is_unspecified(value):
    exc = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "x", ((REASON_KEY, value),))
    assert rpcerrors.reason_of(exc) is Reason.UNSPECIFIED


@pytest.mark.parametrize("exc,code,reason", [
    pytest.param(convert.BadRequest("bad"), grpc.StatusCode.INVALID_ARGUMENT, Reason.INVALID_ARGUMENT,
                 id="agent-bad-request"),
    pytest.param(store_service.BadArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT, Reason.INVALID_ARGUMENT,
                 id="store-bad-argument"),
    pytest.param(actions.Refused("no"), grpc.StatusCode.FAILED_PRECONDITION, Reason.REFUSED, id="agent-refused"),
    pytest.param(errors.Fenced("lease"), grpc.StatusCode.UNAVAILABLE, Reason.FENCED, id="fenced-is-unavailable"),
    pytest.param(errors.ConfigError("x"), grpc.StatusCode.UNKNOWN, Reason.UNSPECIFIED, id="unlisted-walrus-error"),
    pytest.param(KeyError("bug"), grpc.StatusCode.INTERNAL, Reason.INTERNAL, id="not-a-walrus-error"),
])
def test_status_for_subclasses_and_the_rest(exc, code, reason):
    assert rpcerrors.status_for(exc) == (code, reason)
    assert rpcerrors.trailers(reason) == (() if reason is Reason.UNSPECIFIED else ((REASON_KEY, reason.wire_name),))


# -- over real servers ------------------------------------------------------------------

def _call(port: int) -> grpc.RpcError:
    with grpcutil.channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            ch.unary_unary(METHOD)(b"", timeout=10)
    return info.value


@pytest.mark.parametrize("cls,code,reason", TABLE, ids=[c.__name__ for c, _, _ in TABLE])
def test_sync_server_sends_code_reason_and_sentence(cls, code, reason):
    def fail(request, context):
        rpcerrors.abort(context, cls(WORDS))

    server = grpcutil.server(max_workers=2)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "walrus.test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(fail)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        exc = _call(port)
    finally:
        server.stop(0).wait(5)
    assert exc.code() is code and exc.details() == WORDS
    assert rpcerrors.reason_of(exc) is reason
    assert type(rpcerrors.error_from_rpc(exc, "fail")) is cls


def test_aio_server_sends_reason_and_extra_metadata():
    result: dict = {}
    ready = threading.Event()

    async def fail(request, context):
        await rpcerrors.abort_async(context, errors.MustRewind("drop your tail"), extra=(("walrus-x", "42"),))

    async def serve():
        server = grpcutil.aio_server(max_workers=2)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "walrus.test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(fail)}),))
        result["port"] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready.set()
        while "exc" not in result:
            await asyncio.sleep(0.01)
        await server.stop(0)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(20)
    try:
        exc = _call(result["port"])
    finally:
        result["exc"] = True
        thread.join(20)
    assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rpcerrors.reason_of(exc) is Reason.MUST_REWIND
    assert rpcerrors.metadata_of(exc)["walrus-x"] == "42"


def test_undecodable_requests_carry_invalid_argument():
    def ok(request, context):
        return b""

    server = grpcutil.server(max_workers=2)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("walrus.test.Errors", {
        "Fail": grpc.unary_unary_rpc_method_handler(
            ok, request_deserializer=common_pb2.EngineStatus.FromString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpcutil.channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(METHOD)(b"\xff\xff\xff", timeout=10)
    finally:
        server.stop(0).wait(5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert rpcerrors.reason_of(info.value) is Reason.INVALID_ARGUMENT
