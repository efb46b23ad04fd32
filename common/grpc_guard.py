"""Undecodable request bytes get INVALID_ARGUMENT with a sentence, on every server.

Left alone, gRPC answers bytes that do not parse as the method's request
message with UNKNOWN ``Unexpected <class ...DecodeError>`` (grpc.aio) or
INTERNAL plus a server-side traceback (the thread-pool server). The
interceptors here wrap each method's request deserializer so a failure
becomes an ``Undecodable`` marker, and the method's behaviour so the marker
is answered INVALID_ARGUMENT, reason INVALID_ARGUMENT (``common.rpcerrors``;
``what could not be decoded``) before the
servicer sees it; for a request stream, at the message that failed.
``grpcutil.server`` and ``grpcutil.aio_server`` install them.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc

from walrus_ha.common import rpcerrors
from walrus_ha.common.errors import InvalidArgument
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class Undecodable:
    """A request that failed to parse (stands in for the message)."""
    __slots__ = ("method", "error")

    def __init__(self, method: str, error: Exception):
        self.method = method
        self.error = error

    def sentence(self) -> str:
        return (f"{self.method}: the request bytes could not be decoded as the method's request "
                f"message ({type(self.error).__name__}); nothing was done")


def _safe(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:     # any parse failure is the caller's bad input
            log_event(log, "rpc.undecodable", logging.WARNING, method=method, error=type(exc).__name__,
                      size=len(data))
            return Undecodable(method, exc)
    return deserialize


def _sync_behaviour(fn: Callable, streaming_request: bool) -> Callable:
    if streaming_request:
        def checked_iter(it, context):
            for msg in it:
                if isinstance(msg, Undecodable):
                    rpcerrors.abort(context, InvalidArgument(msg.sentence()))
                yield msg
        if inspect.isgeneratorfunction(fn):
            def gen(it, context):
                yield from fn(checked_iter(it, context), context)
            return gen
        return lambda it, context: fn(checked_iter(it, context), context)
    if inspect.isgeneratorfunction(fn):
        def gen_unary(request, context):
            if isinstance(request, Undecodable):
                rpcerrors.abort(context, InvalidArgument(request.sentence()))
            yield from fn(request, context)
        return gen_unary

    def unary(request, context):
        if isinstance(request, Undecodable):
            rpcerrors.abort(context, InvalidArgument(request.sentence()))
        return fn(request, context)
    return unary


def _async_behaviour(fn: Callable, streaming_request: bool) -> Callable:
    async def checked_aiter(it, context):
        async for msg in it:
            if isinstance(msg, Undecodable):
                await rpcerrors.abort_async(context, InvalidArgument(msg.sentence()))
            yield msg

    if inspect.isasyncgenfunction(fn):
        async def agen(request, context):
            if streaming_request:
                request = checked_aiter(request, context)
            elif isinstance(request, Undecodable):
                await rpcerrors.abort_async(context, InvalidArgument(request.sentence()))
            async for reply in fn(request, context):
                yield reply
        return agen

    async def coro(request, context):
        if streaming_request:
            request = checked_aiter(request, context)
        elif isinstance(request, Undecodable):
            await rpcerrors.abort_async(context, InvalidArgument(request.sentence()))
        return await fn(request, context)
    return coro


def guard(handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
    """``handler`` with a safe deserializer and a behaviour that refuses ``Undecodable``."""
    if handler is None:
        return None
    for kind in _KINDS:
        fn = getattr(handler, kind, None)
        if fn is None:
            continue
        streaming_request = handler.request_streaming
        is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        wrapped = (_async_behaviour if is_async else _sync_behaviour)(fn, streaming_request)
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(wrapped, request_deserializer=_safe(handler.request_deserializer, method),
                       response_serializer=handler.response_serializer)
    return handler


class DecodeGuard(grpc.ServerInterceptor):
    """For ``grpc.server(interceptors=...)``."""

    def intercept_service(self, continuation, handler_call_details):
        return guard(continuation(handler_call_details), handler_call_details.method)


class AioDecodeGuard(grpc.aio.ServerInterceptor):
    """For ``grpc.aio.server(interceptors=...)``."""

    async def intercept_service(self, continuation, handler_call_details):
        return guard(await continuation(handler_call_details), handler_call_details.method)


__all__ = ["Undecodable", "DecodeGuard", "AioDecodeGuard", "guard"]
