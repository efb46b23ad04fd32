"""Errors on the wire: the project's exceptions as (gRPC code, reason code)
and back. The one rule: a client classifies a failed call by its reason
code (and status code), never by the words of its message.

A refusal travels as the status code of ``TABLE`` plus the trailing
metadata ``REASON_KEY`` ("walrus-reason") whose value is the name of an
``ErrorReason`` value of ``protos/common.proto`` (ASCII, e.g.
``ERROR_REASON_STALE_TERM``); the status message stays the human sentence.

* Servers: ``abort(context, exc)`` / ``await abort_async(context, exc)``
  for every error a servicer answers (``status_for`` is the table lookup).
* Clients: ``reason_of(rpc_error)`` reads the reason; ``error_from_rpc``
  turns a failed call back into the project's exception with the server's
  sentence as its message.
"""
from __future__ import annotations

import enum
from typing import NoReturn

import grpc

from walrus_ha.common.errors import (
    CorruptWal,
    DcsUnavailable,
    EngineError,
    Fenced,
    InvalidArgument,
    LeaseLost,
    MustRewind,
    NeedsReclone,
    Refused,
    StaleTerm,
    WalRemoved,
    WalrusError,
    WrongRole,
)
from walrus_ha.protos import common_pb2

REASON_KEY = "walrus-reason"


class Reason(enum.IntEnum):
    """``ErrorReason`` of protos/common.proto (same numbers; the wire carries the proto name)."""
    UNSPECIFIED = common_pb2.ERROR_REASON_UNSPECIFIED
    INVALID_ARGUMENT = common_pb2.ERROR_REASON_INVALID_ARGUMENT
    REFUSED = common_pb2.ERROR_REASON_REFUSED
    STALE_TERM = common_pb2.ERROR_REASON_STALE_TERM
    WRONG_ROLE = common_pb2.ERROR_REASON_WRONG_ROLE
    FENCED = common_pb2.ERROR_REASON_FENCED
    NEEDS_RECLONE = common_pb2.ERROR_REASON_NEEDS_RECLONE
    WAL_REMOVED = common_pb2.ERROR_REASON_WAL_REMOVED
    MUST_REWIND = common_pb2.ERROR_REASON_MUST_REWIND
    CORRUPT_WAL = common_pb2.ERROR_REASON_CORRUPT_WAL
    ENGINE_ERROR = common_pb2.ERROR_REASON_ENGINE_ERROR
    DCS_UNAVAILABLE = common_pb2.ERROR_REASON_DCS_UNAVAILABLE
    LEASE_LOST = common_pb2.ERROR_REASON_LEASE_LOST
    INTERNAL = common_pb2.ERROR_REASON_INTERNAL

    @property
    def wire_name(self) -> str:
        """The metadata value: the proto enum value's name."""
        return common_pb2.ErrorReason.Name(self.value)


_C = grpc.StatusCode
# Exception -> (code, reason). Subclasses before their bases: the first
# match wins. Fenced is UNAVAILABLE (not FAILED_PRECONDITION): a fence is
# lifted by the node itself (lease renewed) or ended by a failover, so a
# client should back off and retry, here or at the new leader, which is what
# UNAVAILABLE tells gRPC clients (and ``grpcutil.call_with_retry``) to do.
TABLE: tuple[tuple[type[WalrusError], grpc.StatusCode, Reason], ...] = (
    (InvalidArgument, _C.INVALID_ARGUMENT, Reason.INVALID_ARGUMENT),
    (Refused, _C.FAILED_PRECONDITION, Reason.REFUSED),
    (StaleTerm, _C.FAILED_PRECONDITION, Reason.STALE_TERM),
    (WrongRole, _C.FAILED_PRECONDITION, Reason.WRONG_ROLE),
    (NeedsReclone, _C.FAILED_PRECONDITION, Reason.NEEDS_RECLONE),
    (WalRemoved, _C.FAILED_PRECONDITION, Reason.WAL_REMOVED),
    (MustRewind, _C.FAILED_PRECONDITION, Reason.MUST_REWIND),
    (Fenced, _C.UNAVAILABLE, Reason.FENCED),
    (DcsUnavailable, _C.UNAVAILABLE, Reason.DCS_UNAVAILABLE),
    (LeaseLost, _C.UNAVAILABLE, Reason.LEASE_LOST),
    (CorruptWal, _C.INTERNAL, Reason.CORRUPT_WAL),
    (EngineError, _C.INTERNAL, Reason.ENGINE_ERROR),
)
_BY_REASON: dict[Reason, type[WalrusError]] = {reason: cls for cls, _, reason in TABLE}


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, Reason]:
    """The (code, reason) a server answers ``exc`` with: ``TABLE``; another
    ``WalrusError`` is UNKNOWN without a reason, anything else (a bug) INTERNAL."""
    for cls, code, reason in TABLE:
        if isinstance(exc, cls):
            return code, reason
    if isinstance(exc, WalrusError):
        return _C.UNKNOWN, Reason.UNSPECIFIED
    return _C.INTERNAL, Reason.INTERNAL


def trailers(reason: Reason) -> tuple[tuple[str, str], ...]:
    """The trailing metadata that carries ``reason``."""
    return () if reason is Reason.UNSPECIFIED else ((REASON_KEY, reason.wire_name),)


def abort(context: grpc.ServicerContext, exc: BaseException, message: str | None = None) -> NoReturn:
    """End a sync RPC with ``exc``'s code and reason; the message is
    ``message`` or ``str(exc)``. Raises (as ``context.abort`` does)."""
    code, reason = status_for(exc)
    context.set_trailing_metadata(trailers(reason))
    context.abort(code, str(exc) if message is None else message)
    raise AssertionError("context.abort returned")   # pragma: no cover


async def abort_async(context: grpc.aio.ServicerContext, exc: BaseException, message: str | None = None,
                      extra: tuple[tuple[str, str], ...] = ()) -> NoReturn:
    """``abort`` for grpc.aio; ``extra`` adds trailing metadata (e.g. an LSN)."""
    code, reason = status_for(exc)
    await context.abort(code, str(exc) if message is None else message,
                        trailing_metadata=trailers(reason) + tuple(extra))
    raise AssertionError("context.abort returned")   # pragma: no cover


def metadata_of(exc: BaseException) -> dict[str, str]:
    """A failed call's trailing metadata as a dict ({} if none or not an RPC error)."""
    get = getattr(exc, "trailing_metadata", None)
    if not isinstance(exc, grpc.RpcError) or get is None:
        return {}
    try:
        return {k: v for k, v in (get() or ()) if isinstance(v, str)}
    except Exception:        # a call object without a finished status
        return {}


def reason_of(exc: BaseException) -> Reason:
    """The reason a walrus server gave for a failed call; UNSPECIFIED when
    there is none (not from a walrus server, not reached, or an unknown name)."""
    name = metadata_of(exc).get(REASON_KEY, "")
    try:
        return Reason(common_pb2.ErrorReason.Value(name))
    except ValueError:
        return Reason.UNSPECIFIED


def error_from_rpc(exc: grpc.RpcError, what: str) -> WalrusError:
    """The project's exception for a failed call, chosen by its reason code
    (``what`` names the call; the message is ``what: <server's sentence>``).
    No reason, or INTERNAL: a plain ``WalrusError``."""
    code = exc.code() if hasattr(exc, "code") else None
    detail = exc.details() if hasattr(exc, "details") else ""
    text = f"{what}: {detail or (code.name if code is not None else exc)}"
    return _BY_REASON.get(reason_of(exc), WalrusError)(text)
