"""``EmbeddedEngine``: the embedded WAL engine behind ``node.engine.base.Engine``.

It wires the storage (``storage.py``, WAL + state + checkpoints + timelines)
to replication: one ``WalSender`` per connected standby (``sender.py``), a
``WalReceiver`` + ``Replayer`` on a standby (``receiver.py``), synchronous
commit (``syncrep.py``), slots (``slots.py``), and serves ``Store`` and
``WalStream`` on ``listen`` from an in-process grpc.aio server on the
engine's own event loop thread (``aio.py``): client writes, WAL senders and
the standby's receive stream are coroutines there, so a commit costs no
thread hand-off of its own. The write path and its rule (no acknowledgement
before the commit level is met and ``SyncRep.check_ack`` passed; WAL is
written only while primary) live in ``writes.py``; role changes (promote /
demote / follow / rejoin) and fencing in ``transitions.py``. Background
threads: a checkpointer (also recycles WAL and enforces the slot cap) and
the WAL writer (``writes.py``).

Imports point one way: the sender, the receiver and the two servicers
declare what they need of the engine as a Protocol (``SenderHost``,
``StandbyHost``, ``StoreHost``, ``WalStreamHost``) and never import this
module; ``EmbeddedEngine`` satisfies them all.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import grpc

from walrus_ha.common import grpcutil
from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import CommitLevel, Discarded, EngineStatus, Role, SyncSpec, Upstream
from walrus_ha.node.engine.embedded import storage as storage_mod
from walrus_ha.node.engine.embedded.aio import LoopThread
from walrus_ha.node.engine.embedded.receiver import Replayer, WalReceiver, fetch_base_backup
from walrus_ha.node.engine.embedded.sender import SenderRefused, StartPoint, StartRequest, WalSender, check_start
from walrus_ha.node.engine.embedded.slots import SlotStore
from walrus_ha.node.engine.embedded.store_service import StoreServicer
from walrus_ha.node.engine.embedded.syncrep import SyncRep, sync_states
from walrus_ha.node.engine.embedded.transitions import TransitionsMixin
from walrus_ha.node.engine.embedded.walstats import WalStats, WalStatsSnapshot
from walrus_ha.node.engine.embedded.walstream_service import WalStreamServicer
from walrus_ha.node.engine.embedded.writehealth import WriteHealth
from walrus_ha.node.engine.embedded.writes import WritePathMixin
from walrus_ha.protos import store_pb2_grpc, walstream_pb2_grpc

log = logging.getLogger(__name__)

SERVER_WORKERS = 64


class EmbeddedEngine(WritePathMixin, TransitionsMixin):
    """See the module docstring and ``node.engine.base.Engine``."""

    kind = "embedded"
    rejoins_stopped = False    # rejoin() needs a running engine (the agent starts it fenced first)
    pending_restart: tuple[str, ...] = ()   # it has no PostgreSQL parameters (apply_parameters)

    def __init__(self, name: str, data_dir: str, listen: str, config: EmbeddedConfig = EmbeddedConfig(),
                 advertise: str = "", clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.data_dir = data_dir
        self.listen = listen
        self.config = config
        self.data_address = advertise or listen
        self._advertise = advertise
        self.default_level = CommitLevel(config.synchronous_commit)
        self.syncrep = SyncRep(SyncSpec.parse(config.synchronous_standby_names), clock=clock)
        self.write_health = WriteHealth(name)  # a primary whose appends/flushes fail (disk full)
        self.storage: storage_mod.Storage | None = None
        self.wal_stats = WalStats()             # for metrics: lives across storage reopens
        self.slots: SlotStore | None = None
        self.receiver: WalReceiver | None = None
        self.replayer: Replayer | None = None
        self.extra_servicers: list[Callable[[grpc.Server], None]] = []
        self._senders: dict[str, WalSender] = {}
        self._senders_lock = threading.Lock()
        self._gate = threading.Lock()          # role check + append vs. role changes
        self._role_lock = threading.RLock()    # serializes role changes
        self._role = Role.STOPPED
        self._draining = False                 # demoting: writes refused, senders still ship the tail
        self._needs_reclone = ""
        self._reclone_requested = ""           # an operator's reinit: the next rejoin re-clones
        self.last_discard: Discarded | None = None     # what the last rewind dropped (``rewind``)
        self._server: grpc.aio.Server | None = None
        self._loop: LoopThread | None = None
        self._stop = threading.Event()
        self._flush_wanted = threading.Event()
        self._inflight = 0                     # commits waiting for durability (under _gate)
        self.ship_ahead_lsn = 0                # senders may ship this far past flush (see _ship_ahead)
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_node_config(cls, node_config) -> EmbeddedEngine:
        """Build from a ``node.config.NodeConfig`` (serves on ``data_listen``)."""
        return cls(node_config.name, node_config.data_dir, node_config.data_listen, node_config.embedded,
                   advertise=node_config.data_address)

    # ------------------------------------------------------------ properties
    @property
    def term(self) -> int:
        return self.storage.control.term if self.storage else 0

    @property
    def timeline(self) -> int:
        return self.storage.timeline if self.storage else 0

    @property
    def replay_lsn(self) -> int:
        return self.storage.replay_lsn if self.storage else 0

    @property
    def role(self) -> Role:
        return self._role

    @property
    def event_loop(self) -> LoopThread | None:
        """The loop serving Store/WalStream (None when not serving)."""
        return self._loop

    @property
    def is_draining(self) -> bool:
        """A demotion is shipping the last WAL to the standbys."""
        return self._draining

    def is_serving_wal(self) -> bool:
        """Senders keep streaming while primary, and while a demotion drains the WAL tail."""
        return (self._role is Role.PRIMARY or self._draining) and not self._stop.is_set()

    # ------------------------------------------------------------ life cycle
    def is_initialized(self) -> bool:
        return storage_mod.is_initialized(self.data_dir)

    def bootstrap(self, term: int = 0) -> None:
        """Create a new primary on timeline 1 in an empty data dir."""
        if self.is_initialized():
            raise EngineError(f"cannot bootstrap: {self.data_dir} already holds a database")
        os.makedirs(self.data_dir, exist_ok=True)
        st = storage_mod.Storage.open(self.data_dir, self.config)
        if term:
            st.set_control(term=term)
        st.close()
        log_event(log, "bootstrapped", name=self.name, data_dir=self.data_dir)

    def clone(self, upstream: Upstream) -> None:
        """Fill an empty data dir with a base backup of ``upstream`` (a standby of it)."""
        if self.is_initialized():
            raise EngineError(f"cannot clone: {self.data_dir} already holds a database")
        snapshot, history, term = fetch_base_backup(upstream, self.name)
        os.makedirs(self.data_dir, exist_ok=True)
        st = storage_mod.Storage.create_from_base(self.data_dir, self.config, snapshot, history,
                                                  term=term, upstream=str(upstream))
        log_event(log, "cloned", name=self.name, upstream=upstream, lsn=format_lsn(st.replay_lsn))
        st.close()

    def start(self) -> None:
        """Recover and serve in the recorded role (a standby resumes following
        its recorded upstream)."""
        if self.storage is not None:
            return
        self._stop.clear()
        self._open_storage()
        control = self.storage.control
        try:
            self._start_server()
        except Exception:
            self.storage.close()
            self.storage = None
            raise
        for target, tname in ((self._checkpointer, "checkpointer"), (self._walwriter, "walwriter")):
            t = threading.Thread(target=target, name=tname, daemon=True)
            t.start()
            self._threads.append(t)
        if control.role is Role.STANDBY:
            self._role = Role.STANDBY
            self._start_replayer()
            if control.upstream:
                name, _, address = control.upstream.partition("@")
                self._start_receiver(Upstream(name, address))
        else:
            self._role = Role.PRIMARY
        log_event(log, "started", name=self.name, role=self._role.value, timeline=self.timeline,
                  lsn=format_lsn(self.storage.wal.write_lsn), listen=self.data_address)

    def _open_storage(self) -> None:
        """Recover the storage. A primary that did not stop cleanly may have
        shipped WAL it then lost: it writes a SKIP record before anything new
        (``Storage.skip_lost_tail``)."""
        storage = self.storage = storage_mod.Storage.open(self.data_dir, self.config)
        storage.wal.stats = self.wal_stats
        self.slots = SlotStore(self.data_dir)
        self.ship_ahead_lsn = 0
        control = storage.control
        if control.clean:
            storage.set_control(clean=False)
        elif control.role is Role.PRIMARY:
            lost_from, end = storage.skip_lost_tail()
            log_event(log, "skip_after_crash", logging.WARNING, name=self.name, recovered_end=format_lsn(lost_from),
                      next_record=format_lsn(end),
                      why="not stopped cleanly: standbys may hold WAL shipped ahead of a flush this node lost")

    def _start_server(self) -> None:
        if self._server is not None:
            return
        self._loop = LoopThread(f"engine-loop-{self.name}")
        try:
            bound = self._loop.run(self._serve(), timeout=30)
        except Exception:
            self._loop.stop()
            self._loop = None
            raise
        host, _, port = self.listen.rpartition(":")
        if int(port) == 0 or not self._advertise:
            adv_host = (self._advertise.rpartition(":")[0] if self._advertise else host) or "127.0.0.1"
            self.data_address = f"{adv_host}:{bound}"

    async def _serve(self) -> int:
        """Create and start the grpc.aio server on the engine loop: ``Store``
        and the ``WalStream`` stream are coroutines on the loop; the other
        (sync) methods run in a small thread pool."""
        server = grpcutil.aio_server(SERVER_WORKERS)
        store_pb2_grpc.add_StoreServicer_to_server(StoreServicer(self), server)
        walstream_pb2_grpc.add_WalStreamServicer_to_server(WalStreamServicer(self), server)
        for add in self.extra_servicers:
            add(server)
        try:
            bound = server.add_insecure_port(self.listen)
        except RuntimeError as exc:     # grpc raises on a port in use
            bound = 0
            log_event(log, "bind_failed", logging.ERROR, listen=self.listen, error=exc)
        if bound == 0:
            raise EngineError(f"cannot listen on {self.listen} (address in use or not local?)")
        await server.start()
        self._server = server
        return bound

    def _stop_server(self, grace: float) -> None:
        server, loop = self._server, self._loop
        self._server = self._loop = None
        if server is not None and loop is not None:
            try:
                loop.run(server.stop(grace), timeout=grace + 5)
            except Exception as exc:     # stopping anyway; the loop goes next
                log_event(log, "server_stop_failed", logging.WARNING, error=exc)
        if loop is not None:
            loop.stop()

    def stop(self) -> None:
        """Stop serving, stop replication threads, checkpoint and close. Idempotent."""
        with self._role_lock:
            if self.storage is None:
                return
            self._stop.set()
            self.syncrep.abort_waiters("engine is stopping")
            self._stop_receiver()
            self._stop_replayer()
            self._stop_senders()
            self._stop_server(1.0)
            self.storage.wal.wake_all()
            self._flush_wanted.set()
            for t in self._threads:
                t.join(5)
            self._threads.clear()
            try:
                self._checkpoint()
                self.storage.flush()
                self.storage.set_control(clean=True)
            except EngineError as exc:
                log_event(log, "shutdown_checkpoint_failed", logging.WARNING, error=exc)
            self.storage.close()
            self.storage = None
            self._role = Role.STOPPED

    # ------------------------------------------------------------ data path
    def replay_to(self, lsn: int) -> int:
        return self.storage.replay_up_to(lsn)

    # ------------------------------------------------------------ WAL senders
    def open_sender(self, start) -> WalSender:
        """Validate a ``StartReplication`` and register a sender for it."""
        storage = self.storage
        if self._role is not Role.PRIMARY or storage is None:
            raise SenderRefused(f"{self.name} is not a primary and serves no WAL")
        name = start.standby_name
        wal = storage.wal

        def locate() -> StartPoint:
            if wal.is_record_start(start.start_lsn):
                return StartPoint(True)
            return StartPoint(False, storage.skip_holding(start.start_lsn))
        check_start(StartRequest(name, start.start_lsn, start.timeline, start.term), self.term,
                    wal.write_lsn, wal.oldest_lsn, self.slots.get(name), storage.history(), locate)
        self.slots.ensure(name, start.start_lsn)
        self.slots.set_active(name, True)
        sender = WalSender(self, name, start.start_lsn)
        with self._senders_lock:
            old = self._senders.get(name)
            self._senders[name] = sender
        if old is not None:
            old.stop()
        log_event(log, "walsender_start", standby=name, start=format_lsn(start.start_lsn))
        return sender

    def close_sender(self, sender: WalSender) -> None:
        with self._senders_lock:
            if self._senders.get(sender.name) is not sender:
                return
            del self._senders[sender.name]
        self.syncrep.disconnect(sender.name)
        if self.slots is not None:
            self.slots.set_active(sender.name, False)
        log_event(log, "walsender_end", standby=sender.name, sent=format_lsn(sender.sent_lsn),
                  chunks=sender.chunks_sent, feedback=sender.feedback_received)

    def _stop_senders(self) -> None:
        with self._senders_lock:
            senders = list(self._senders.values())
        for s in senders:
            s.stop()
            self.syncrep.disconnect(s.name)

    def timeline_history(self) -> tuple[int, list[tuple[int, int, str]]]:
        h = self.storage.history()
        return h.timeline, [(e.timeline, e.end_lsn, e.reason) for e in h.entries]

    def base_backup(self, standby_name: str) -> tuple[int, int, int, bytes]:
        if self._role is not Role.PRIMARY or self.storage is None:
            raise SenderRefused(f"{self.name} is not a primary; take base backups from the primary")
        bb = self.storage.base_backup()
        self.slots.reset(standby_name, bb.lsn)
        return bb.lsn, bb.timeline, bb.term, bb.snapshot

    # ------------------------------------------------------------ standby side
    def _start_replayer(self) -> None:
        if self.replayer is None:
            self.replayer = Replayer(self)
            self.replayer.start()

    def _stop_replayer(self) -> None:
        if self.replayer is not None:
            self.replayer.stop()
            self.replayer = None

    def _start_receiver(self, upstream: Upstream) -> None:
        self.receiver = WalReceiver(self, upstream)
        self.receiver.start()

    def _stop_receiver(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    def observe_term(self, term: int) -> None:
        """Persist a newer term seen on the WAL stream."""
        if term > self.term:
            self.storage.set_control(term=term)

    def mark_needs_reclone(self, reason: str) -> None:
        self._needs_reclone = reason or "needs re-clone"
        log_event(log, "needs_reclone", logging.ERROR, name=self.name, reason=reason)

    def request_reclone(self, reason: str) -> None:
        """An operator's reinit: the next ``rejoin`` re-clones (see ``Engine``)."""
        self._reclone_requested = reason or "re-clone requested"
        log_event(log, "reclone_requested", name=self.name, reason=reason)

    def restart_pending(self) -> bool:
        """Every embedded setting is read at start and none changes at run time."""
        return False

    def rewind(self, fork_lsn: int, upstream: str = "") -> None:
        """Drop local WAL at/after ``fork_lsn`` (NeedsReclone if impossible);
        what was dropped becomes ``last_discard`` (the exact RPO receipt)."""
        before, tli = self.storage.wal.write_lsn, self.storage.timeline
        self.storage.last_discard = None
        to = self.storage.rewind_to(fork_lsn)
        frm, end, size, records, txns = self.storage.last_discard or (to, before, before - to, 0, 0)
        r = self.receiver
        self.last_discard = Discarded(tli, frm, end, size, records, txns, upstream or (str(r.upstream) if r else ""),
                                      self.term, time.time())
        log_event(log, "rewound", name=self.name, frm=format_lsn(before), to=format_lsn(to),
                  asked=format_lsn(fork_lsn), discarded_bytes=size, records=records, transactions=txns)

    # ------------------------------------------------------------ status
    def status(self) -> EngineStatus:
        storage = self.storage
        if storage is None:
            return EngineStatus(role=Role.STOPPED, engine=self.kind)
        wal = storage.wal
        standbys = ()
        if self._role is Role.PRIMARY:
            with self._senders_lock:
                senders = list(self._senders.values())
            states = sync_states(self.syncrep.spec, [s.name for s in senders])
            standbys = tuple(s.info(wal.flush_lsn, states[s.name]) for s in senders)
        r = self.receiver
        reason = self.syncrep.fence_reason
        health = self.write_health if self._role is Role.PRIMARY else None
        return EngineStatus(
            role=self._role, timeline=storage.timeline, term=storage.control.term,
            write_lsn=wal.write_lsn, flush_lsn=wal.flush_lsn, replay_lsn=storage.replay_lsn,
            receive_lsn=r.receive_lsn if r else wal.flush_lsn,
            upstream=str(r.upstream) if r else "", streaming=bool(r and r.streaming),
            fenced=reason is not None, fence_reason=reason or "",
            needs_reclone=bool(self._needs_reclone or self._reclone_requested), standbys=standbys,
            slots=self.slots.info(wal.write_lsn) if self.slots else (), engine=self.kind,
            sync_standbys=self.syncrep.spec.render(),
            detail=self._needs_reclone or self._reclone_requested or (r.error if r else ""),
            write_error=health.error if health else "", write_error_since=health.since if health else 0.0,
            wal_repairs=len(wal.repairs), wal_repair=wal.repairs[-1] if wal.repairs else "")

    def wal_stats_snapshot(self) -> WalStatsSnapshot:
        """WAL bytes written and fdatasync latencies since this engine object
        was made (for metrics; taken under the WAL lock when open)."""
        storage = self.storage
        if storage is not None and storage.wal.stats is self.wal_stats:
            return storage.wal.stats_snapshot()
        return self.wal_stats.snapshot()

    # ------------------------------------------------------------ background
    def _checkpoint(self) -> None:
        storage = self.storage
        slot_min = None
        if self._role is Role.PRIMARY and self.slots is not None:
            cap = self.config.max_slot_wal_keep_size
            slot_min, lost = self.slots.enforce_cap(storage.wal.write_lsn, cap)
            if lost:
                log_event(log, "slot_lost", logging.WARNING, slots=",".join(lost), cap=cap)
                with self._senders_lock:
                    senders = [self._senders[n] for n in lost if n in self._senders]
                for s in senders:
                    s.stop()
        storage.checkpoint(slot_min_lsn=slot_min)

    def _checkpointer(self) -> None:
        while not self._stop.wait(self.config.checkpoint_interval_s):
            try:
                with self._role_lock:
                    if self.storage is not None:
                        self._checkpoint()
            except Exception as exc:   # keep the thread alive; log and retry next round
                log_event(log, "checkpoint_failed", logging.ERROR, error=exc)
