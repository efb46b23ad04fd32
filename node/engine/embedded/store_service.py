"""The ``Store`` gRPC servicer: a thin adapter from messages to the engine.
Its methods are coroutines on the engine's event loop (``aio.py``).

Limits and errors (the client-facing contract):

* keys: 1 .. ``max_key_bytes`` bytes (default 1024); values: 0 ..
  ``max_value_bytes`` bytes (default 1 MiB); a batch: 1 .. 10,000 ops;
  the commit level must be a known ``CommitLevel`` value (0 = the server's
  ``synchronous_commit``). Anything else: INVALID_ARGUMENT with a sentence.
* a standby refuses writes: FAILED_PRECONDITION naming its primary.
* a fenced primary (or one past its lease deadline): UNAVAILABLE with the
  fence reason; the write may or may not be durable, it is never acknowledged.
* every error also carries its reason code in the trailing metadata
  ``walrus-reason`` (``common.rpcerrors``: INVALID_ARGUMENT, WRONG_ROLE,
  FENCED, ENGINE_ERROR, ...); classify by it, not by the sentence.
* reads are served by every role; on a standby ``GetReply.lag_bytes`` /
  ``lag_s`` say how far behind the primary the answer is.
* ``WriteStream``: the same writes pipelined on one bidirectional stream;
  each ``WriteRequest`` gets a ``WriteStreamReply`` (same ``id``) once its
  commit level is met, in order. The first error ends the stream with the
  status the unary call would get (an empty ``WriteRequest``:
  INVALID_ARGUMENT).
"""
from __future__ import annotations

from typing import Protocol

from walrus_ha.common import rpcerrors
from walrus_ha.common.errors import EngineError, InvalidArgument, WrongRole
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import CommitLevel
from walrus_ha.node.engine.embedded.writes import ReadResult, WriteResult
from walrus_ha.protos import store_pb2, store_pb2_grpc

MAX_BATCH_OPS = 10_000

_LEVELS = {
    store_pb2.COMMIT_DEFAULT: None,
    store_pb2.COMMIT_OFF: CommitLevel.OFF,
    store_pb2.COMMIT_LOCAL: CommitLevel.LOCAL,
    store_pb2.COMMIT_REMOTE_WRITE: CommitLevel.REMOTE_WRITE,
    store_pb2.COMMIT_ON: CommitLevel.ON,
    store_pb2.COMMIT_REMOTE_APPLY: CommitLevel.REMOTE_APPLY,
}


class BadArgument(InvalidArgument):
    """A request argument is invalid; the message is the client's sentence."""


def level_from_proto(value: int) -> CommitLevel | None:
    """Proto enum -> CommitLevel (None = server default); BadArgument if unknown."""
    try:
        return _LEVELS[value]
    except KeyError:
        raise BadArgument(f"unknown commit level {value} (known: 0..5, see store.proto CommitLevel)") from None


def check_key(key: bytes, max_key: int) -> None:
    if not key:
        raise BadArgument("key must not be empty")
    if len(key) > max_key:
        raise BadArgument(f"key is {len(key)} bytes; the limit is {max_key} bytes (max_key_bytes)")


def check_value(value: bytes, max_value: int) -> None:
    if len(value) > max_value:
        raise BadArgument(f"value is {len(value)} bytes; the limit is {max_value} bytes (max_value_bytes)")


def ops_from_batch(req: store_pb2.BatchRequest, max_key: int, max_value: int) -> list[tuple[bytes, bytes | None]]:
    """Validate a batch into ``[(key, value or None for delete)]``."""
    if not req.ops:
        raise BadArgument("batch must contain at least one op")
    if len(req.ops) > MAX_BATCH_OPS:
        raise BadArgument(f"batch has {len(req.ops)} ops; the limit is {MAX_BATCH_OPS}")
    out = []
    for i, op in enumerate(req.ops):
        try:
            check_key(op.key, max_key)
            if op.delete and op.value:
                raise BadArgument("a delete op must not carry a value")
            check_value(op.value, max_value)
        except BadArgument as exc:
            raise BadArgument(f"op {i}: {exc}") from None
        out.append((op.key, None if op.delete else op.value))
    return out


class StoreHost(Protocol):
    """What the servicer needs of its engine (``EmbeddedEngine`` is one; see ``writes.py``)."""

    config: EmbeddedConfig           # max_key_bytes, max_value_bytes

    async def write_async(self, ops: list[tuple[bytes, bytes | None]], level: CommitLevel | None) -> WriteResult:
        """Write at ``level`` (None: the default); WrongRole / Fenced / EngineError."""

    def read(self, key: bytes) -> ReadResult:
        """Read ``key`` in any role; WrongRole when not running."""


class StoreServicer(store_pb2_grpc.StoreServicer):
    """Put / Delete / Batch / Get against one engine."""

    def __init__(self, engine: StoreHost):
        self._engine = engine
        self._max_key = engine.config.max_key_bytes
        self._max_value = engine.config.max_value_bytes

    async def _write(self, context, ops, level):
        try:
            res = await self._engine.write_async(ops, level)
        except EngineError as exc:      # wrong role, fenced, ...: the one table (common.rpcerrors)
            await rpcerrors.abort_async(context, exc)
        return store_pb2.WriteReply(lsn=res.lsn, timeline=res.timeline, term=res.term)

    def _parse(self, req: store_pb2.WriteRequest) -> tuple[list[tuple[bytes, bytes | None]], CommitLevel | None]:
        """A stream message -> (ops, level); BadArgument if invalid."""
        kind = req.WhichOneof("op")
        if kind == "put":
            check_key(req.put.key, self._max_key)
            check_value(req.put.value, self._max_value)
            return [(req.put.key, req.put.value)], level_from_proto(req.put.level)
        if kind == "delete":
            check_key(req.delete.key, self._max_key)
            return [(req.delete.key, None)], level_from_proto(req.delete.level)
        if kind == "batch":
            return ops_from_batch(req.batch, self._max_key, self._max_value), level_from_proto(req.batch.level)
        raise BadArgument("a WriteRequest must carry one of put, delete or batch")

    async def WriteStream(self, request_iterator, context):
        """Each write is handled as it arrives and answered before the next
        is read (a coroutine on the engine loop: no thread per stream)."""
        async for req in request_iterator:
            try:
                ops, level = self._parse(req)
            except BadArgument as exc:
                await rpcerrors.abort_async(context, exc, f"write {req.id}: {exc}")
            yield store_pb2.WriteStreamReply(id=req.id, reply=await self._write(context, ops, level))

    async def Put(self, request, context):
        try:
            check_key(request.key, self._max_key)
            check_value(request.value, self._max_value)
            level = level_from_proto(request.level)
        except BadArgument as exc:
            await rpcerrors.abort_async(context, exc)
        return await self._write(context, [(request.key, request.value)], level)

    async def Delete(self, request, context):
        try:
            check_key(request.key, self._max_key)
            level = level_from_proto(request.level)
        except BadArgument as exc:
            await rpcerrors.abort_async(context, exc)
        return await self._write(context, [(request.key, None)], level)

    async def Batch(self, request, context):
        try:
            ops = ops_from_batch(request, self._max_key, self._max_value)
            level = level_from_proto(request.level)
        except BadArgument as exc:
            await rpcerrors.abort_async(context, exc)
        return await self._write(context, ops, level)

    async def Get(self, request, context):
        try:
            check_key(request.key, self._max_key)
        except BadArgument as exc:
            await rpcerrors.abort_async(context, exc)
        try:
            res = self._engine.read(request.key)
        except WrongRole as exc:
            await rpcerrors.abort_async(context, exc)
        return store_pb2.GetReply(found=res.found, value=res.value or b"", replay_lsn=res.replay_lsn,
                                  lag_bytes=res.lag_bytes, lag_s=res.lag_s, role=res.role)
