"""The ``WalStream`` gRPC servicer: replication stream, timeline history and
base backups, as a thin adapter over a ``WalStreamHost`` (``EmbeddedEngine``). ``Stream`` is a
coroutine on the engine's event loop; ``TimelineHistory`` and ``BaseBackup``
are plain methods run in the server's thread pool.

Errors: the first stream message must be ``StartReplication`` with a
valid member name as standby name (``common.names``; it names a slot), and
feedback may not report LSNs past what was sent (else INVALID_ARGUMENT,
nothing created or advanced); a refused stream (stale term,
not a primary, lost slot, removed WAL, diverged timeline) gets
FAILED_PRECONDITION with a reason code (``common.rpcerrors``): NEEDS_RECLONE
when the standby cannot catch up from WAL (the receiver turns it into
``needs_reclone`` in its status), MUST_REWIND when it must drop a tail this
node shipped ahead and lost, with the LSN in the trailing metadata
``REWIND_LSN_KEY`` (the receiver rewinds to it and asks again), REFUSED
otherwise. The sentences say the same for people; nothing parses them.
"""
from __future__ import annotations

import asyncio
from typing import Protocol

from walrus_ha.common import rpcerrors
from walrus_ha.common.errors import InvalidArgument, MustRewind, NeedsReclone, Refused, WalrusError
from walrus_ha.common.names import name_problem
from walrus_ha.node.engine.embedded.sender import NEEDS_RECLONE_MARK, REWIND_LSN_KEY, SenderRefused, WalSender
from walrus_ha.protos import walstream_pb2, walstream_pb2_grpc

BACKUP_CHUNK = 1 << 20


def refusal_text(exc: SenderRefused) -> str:
    text = str(exc)
    if exc.needs_reclone and NEEDS_RECLONE_MARK not in text:
        text += f"; the standby {NEEDS_RECLONE_MARK}"
    return text


def refusal_error(exc: SenderRefused) -> WalrusError:
    """A sender's refusal as the project exception that carries its reason."""
    text = refusal_text(exc)
    if exc.needs_reclone:
        return NeedsReclone(text)
    if exc.rewind_to is not None:
        return MustRewind(text)
    return Refused(text)


class WalStreamHost(Protocol):
    """What the servicer needs of its primary (``EmbeddedEngine`` is one)."""

    def open_sender(self, start: walstream_pb2.StartReplication) -> WalSender:
        """Check a ``StartReplication`` and register a sender; SenderRefused if it may not stream."""

    def close_sender(self, sender: WalSender) -> None:
        """Unregister a sender whose stream ended."""

    def timeline_history(self) -> tuple[int, list[tuple[int, int, str]]]:
        """(current timeline, [(timeline, switch LSN, reason)])."""

    def base_backup(self, standby_name: str) -> tuple[int, int, int, bytes]:
        """(checkpoint LSN, timeline, term, state snapshot); SenderRefused on a standby."""


class WalStreamServicer(walstream_pb2_grpc.WalStreamServicer):
    """Serves standbys of one primary."""

    def __init__(self, engine: WalStreamHost):
        self._engine = engine

    async def Stream(self, request_iterator, context):
        """A coroutine on the engine loop: WAL out from ``sender.messages()``,
        feedback in on a reader task (``sender.read_feedback``)."""
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        if first.WhichOneof("msg") != "start" or not first.start.standby_name:
            await rpcerrors.abort_async(context, InvalidArgument(
                "the first stream message must be StartReplication with a standby_name"))
        why = name_problem(first.start.standby_name, "standby_name")
        if why is not None:      # it names a lasting replication slot: nothing is created
            await rpcerrors.abort_async(context, InvalidArgument(why))
        try:
            sender = self._engine.open_sender(first.start)
        except SenderRefused as exc:
            meta = () if exc.rewind_to is None else ((REWIND_LSN_KEY, str(exc.rewind_to)),)
            await rpcerrors.abort_async(context, refusal_error(exc), extra=meta)
        context.add_done_callback(lambda _ctx: sender.stop())
        reader = asyncio.get_running_loop().create_task(sender.read_feedback(request_iterator),
                                                        name=f"walsender-fb-{sender.name}")
        try:
            async for msg in sender.messages():
                yield msg
        except SenderRefused as exc:
            await rpcerrors.abort_async(context, refusal_error(exc))
        finally:
            reader.cancel()
            self._engine.close_sender(sender)
        if sender.bad_feedback:
            await rpcerrors.abort_async(context, InvalidArgument(sender.bad_feedback))

    def TimelineHistory(self, request, context):
        current, entries = self._engine.timeline_history()
        return walstream_pb2.TimelineHistoryReply(
            current_timeline=current,
            entries=[walstream_pb2.TimelineHistoryEntry(timeline=t, switch_lsn=lsn, reason=reason)
                     for t, lsn, reason in entries])

    def BaseBackup(self, request, context):
        if not request.standby_name:
            rpcerrors.abort(context, InvalidArgument("BaseBackup needs a standby_name"))
        why = name_problem(request.standby_name, "standby_name")
        if why is not None:      # it names a lasting replication slot: nothing is created
            rpcerrors.abort(context, InvalidArgument(why))
        try:
            lsn, timeline, term, data = self._engine.base_backup(request.standby_name)
        except SenderRefused as exc:
            rpcerrors.abort(context, refusal_error(exc))
        view = memoryview(data)
        off = 0
        while True:
            piece = bytes(view[off:off + BACKUP_CHUNK])
            off += len(piece)
            last = off >= len(data)
            yield walstream_pb2.BaseBackupChunk(checkpoint_lsn=lsn, timeline=timeline, data=piece,
                                                last=last, term=term)
            if last:
                return
