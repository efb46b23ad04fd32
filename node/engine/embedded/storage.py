"""The embedded engine's storage: WAL + state + checkpoints + timelines + control.

Rule: the state is always the replay of the WAL from a checkpoint, in order;
nothing changes the state without a WAL record at the same position, and a
checkpoint never claims a redo LSN past durable WAL.

Layout of ``data_dir``: ``wal/`` (segments, see ``wal.py``), ``checkpoints/``,
``timelines/`` (``<TLI>.history``), ``control`` (role, timeline, term,
upstream, clean; JSON with a CRC, replaced atomically).

API (thread-safe)
-----------------
``Storage.open(data_dir, config: EmbeddedConfig) -> Storage``: recover (newest
    good checkpoint, WAL recovery from its redo LSN, replay to the WAL end), or
    bootstrap an empty directory as a primary on timeline 1.
``Storage.create_from_base(data_dir, config, snapshot, history, term=0)``: a
    new standby from a base backup (``base_backup()`` of the primary).
``base_backup() -> BaseBackup(lsn, timeline, term, snapshot, history)``.
``get(key)``; ``state`` (``KvState``); ``wal`` (``Wal``: read_raw, append_raw,
    flush, wait_for_*); ``timeline``, ``replay_lsn``, ``history()``.
``apply_local(record) -> (start, end)`` / ``put(key, value)``: primary writes:
    append + apply (not durable until ``flush(end)``).
``flush(upto=None) -> flush_lsn`` (group commit).
``receive(start_lsn, data) -> end`` (standby: ``wal.append_raw``).
``replay_up_to(lsn) -> replay_lsn`` (standby: apply received WAL).
``checkpoint(slot_min_lsn=None) -> CheckpointInfo``: flush, snapshot, prune,
    recycle WAL below min(oldest kept checkpoint, ``slot_min_lsn``).
``rewind_to(lsn)``: drop WAL at/after ``lsn`` (or the record holding it),
    rebuild the state from a checkpoint at or before it; raises NeedsReclone
    if no usable checkpoint.
``skip_lost_tail() -> (E, end)``: a primary after a crash (see ``Skip``);
    ``skip_holding(lsn) -> E | None``: the SKIP record ``lsn`` lies inside.
``switch_timeline(new_tli, term, reason) -> switch_lsn``: promotion.
``control`` / ``set_control(**fields)``; ``close()``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from dataclasses import dataclass

import crc32c

from walrus_ha.common.errors import CorruptWal, EngineError, NeedsReclone
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import Role

from . import checkpoint as ckpt
from .records import SKIP_HEAD, Put, Record, RecordType, Skip, TimelineSwitch, decode, encode, encode_put, is_skip
from .segments import fsync_dir
from .state import KvState, snapshot_header
from .timeline import TimelineHistory, read_history, remove_histories_after, write_history
from .wal import HEADER_SIZE, SHIP_AHEAD, Wal

KEEP_CHECKPOINTS = 2
SKIP_PAD = SHIP_AHEAD - SKIP_HEAD
SKIP_TOTAL = HEADER_SIZE + SKIP_HEAD + SKIP_PAD  # > SHIP_AHEAD: covers every LSN a standby may hold


@dataclass(frozen=True)
class ControlData:
    """What the node was doing, persisted across restarts."""
    role: Role = Role.PRIMARY
    timeline: int = 1
    term: int = 0
    upstream: str = ""
    # True only between a clean stop and the next start: a primary that finds
    # it False crashed, and writes a SKIP record before anything new.
    clean: bool = False


@dataclass(frozen=True)
class BaseBackup:
    """A consistent copy of a primary: the state reflects every record before
    ``lsn``, which is durable on the primary."""
    lsn: int
    timeline: int
    term: int
    snapshot: bytes
    history: TimelineHistory


def write_control(data_dir: str, control: ControlData) -> None:
    """Atomically and durably replace the control file."""
    body = json.dumps({"role": control.role.value, "timeline": control.timeline,
                       "term": control.term, "upstream": control.upstream,
                       "clean": control.clean}, sort_keys=True)
    path = os.path.join(data_dir, "control")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{crc32c.crc32c(body.encode()):08x} {body}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(data_dir)


def read_control(data_dir: str) -> ControlData | None:
    """The control file, None if absent. Raises CorruptWal if damaged."""
    path = os.path.join(data_dir, "control")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        crc, _, body = f.read().strip().partition(" ")
    try:
        if int(crc, 16) != crc32c.crc32c(body.encode()):
            raise ValueError("checksum mismatch")
        d = json.loads(body)
        return ControlData(Role(d["role"]), int(d["timeline"]), int(d["term"]), str(d["upstream"]),
                           bool(d.get("clean", False)))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptWal(f"control file {path} is damaged: {exc}") from None


def is_initialized(data_dir: str) -> bool:
    """True when ``data_dir`` holds a storage (a control file)."""
    return os.path.exists(os.path.join(data_dir, "control"))


class Storage:
    """See the module docstring."""

    def __init__(self, data_dir: str, config: EmbeddedConfig, wal: Wal, state: KvState,
                 control: ControlData) -> None:
        self.data_dir = data_dir
        self.config = config
        self.wal = wal
        self.state = state
        self._control = control
        self._lock = threading.RLock()         # serializes appends, replay, rewind
        self._ckpt_lock = threading.Lock()
        self.last_discard: tuple[int, int, int, int, int] | None = None   # see _count (last rewind)

    # ------------------------------------------------------------ open/create
    @classmethod
    def open(cls, data_dir: str, config: EmbeddedConfig) -> Storage:
        """Recover the storage in ``data_dir``, bootstrapping it if empty.
        Raises CorruptWal / NeedsReclone if it cannot be recovered."""
        control = read_control(data_dir)
        if control is None:
            return cls._bootstrap(data_dir, config)
        dirs = _dirs(data_dir)
        found = ckpt.load_latest(dirs["checkpoints"])
        # No good checkpoint: a log that still begins at 0 can be replayed from empty.
        state, redo = (found[0], found[1].redo_lsn) if found else (KvState(), 0)
        try:
            wal = Wal.open(dirs["wal"], config.segment_size, start_lsn=redo, timeline=state.timeline)
        except EngineError as exc:
            raise NeedsReclone(f"cannot recover {data_dir}: {exc}") from None
        storage = cls(data_dir, config, wal, state, control)
        storage.replay_up_to(wal.write_lsn)
        return storage

    @classmethod
    def _bootstrap(cls, data_dir: str, config: EmbeddedConfig) -> Storage:
        dirs = _fresh_dirs(data_dir)
        state = KvState()
        ckpt.write_checkpoint(dirs["checkpoints"], state)
        wal = Wal.open(dirs["wal"], config.segment_size, start_lsn=0, timeline=1)
        control = ControlData(Role.PRIMARY, 1, 0, "", clean=True)
        write_control(data_dir, control)      # last: its presence means "initialized"
        return cls(data_dir, config, wal, state, control)

    @classmethod
    def create_from_base(cls, data_dir: str, config: EmbeddedConfig, snapshot: bytes,
                         history: TimelineHistory, term: int = 0, upstream: str = "") -> Storage:
        """Create a standby's storage from a primary's base backup."""
        if is_initialized(data_dir):
            raise EngineError(f"{data_dir} already holds a database")
        state = KvState.from_snapshot(snapshot)
        dirs = _fresh_dirs(data_dir)
        for i, e in enumerate(history.entries):
            write_history(dirs["timelines"], TimelineHistory(e.timeline, history.entries[:i]))
        write_history(dirs["timelines"], history)
        ckpt.write_checkpoint(dirs["checkpoints"], state)
        wal = Wal.open(dirs["wal"], config.segment_size, start_lsn=state.applied_lsn,
                       timeline=state.timeline)
        control = ControlData(Role.STANDBY, state.timeline, max(term, state.term), upstream, clean=True)
        write_control(data_dir, control)
        return cls(data_dir, config, wal, state, control)

    def base_backup(self) -> BaseBackup:
        """A snapshot of the state at a durable LSN, with the timeline history."""
        snap = self.state.snapshot()
        lsn, tli, term = snapshot_header(snap)
        self.wal.flush(lsn)
        return BaseBackup(lsn, tli, max(term, self._control.term), snap, self.history_of(tli))

    # ------------------------------------------------------------ reads
    def get(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    @property
    def timeline(self) -> int:
        """Timeline of the last record replayed into the state."""
        return self.state.timeline

    @property
    def replay_lsn(self) -> int:
        return self.state.applied_lsn

    @property
    def control(self) -> ControlData:
        return self._control

    def history(self) -> TimelineHistory:
        """History of the timeline the WAL ends on: the replayed timeline's,
        extended by timeline switches received but not replayed yet (so a
        standby never mistakes WAL it shares with its upstream for a fork)."""
        with self._lock:
            hist = self.history_of(self.timeline)
            if self.wal.last_timeline == hist.timeline:
                return hist
            for rec in self.wal.iter_records(self.state.applied_lsn):
                if rec.payload[:1] == b"\x04":
                    sw = decode(rec.payload)
                    if sw.new_tli > hist.timeline:
                        hist = hist.branch(sw.new_tli, sw.switch_lsn, sw.reason)
            return hist

    def history_of(self, tli: int) -> TimelineHistory:
        return read_history(_dirs(self.data_dir)["timelines"], tli)

    # ------------------------------------------------------------ writes
    def apply_local(self, record: Record) -> tuple[int, int]:
        """Primary: append ``record`` on the current timeline and apply it."""
        payload = encode(record)
        with self._lock:
            start, end = self.wal.append(payload, self.state.timeline)
            self.state.apply(record, end)
        return start, end

    def put(self, key: bytes, value: bytes) -> tuple[int, int]:
        """Primary fast path for a single put."""
        with self._lock:
            start, end = self.wal.append(encode_put(key, value), self.state.timeline)
            self.state.apply(Put(key, value), end)
        return start, end

    def flush(self, upto: int | None = None) -> int:
        """Group commit; returns the flush LSN."""
        return self.wal.flush(upto)

    def receive(self, start_lsn: int, data: bytes) -> int:
        """Standby: write verified records received from the primary."""
        return self.wal.append_raw(start_lsn, data)

    def replay_up_to(self, lsn: int) -> int:
        """Apply WAL records from the replay position up to ``lsn`` (capped at
        the WAL end); returns the replay LSN. A timeline switch record also
        writes the new timeline's history file."""
        with self._lock:
            return self._replay(self.state, lsn)

    def _replay(self, state: KvState, lsn: int) -> int:
        for rec in self.wal.iter_records(state.applied_lsn, lsn):
            record = decode(rec.payload)
            if isinstance(record, TimelineSwitch):
                self._record_switch(record)
            state.apply(record, rec.end)
        return state.applied_lsn

    def _record_switch(self, sw: TimelineSwitch) -> None:
        # Always rewrite: a stale file of the same number may survive a rewind.
        tldir = _dirs(self.data_dir)["timelines"]
        parent = read_history(tldir, sw.parent_tli)
        write_history(tldir, parent.branch(sw.new_tli, sw.switch_lsn, sw.reason))

    def switch_timeline(self, new_tli: int, term: int, reason: str = "") -> int:
        """Promote: replay everything, write the new history, append a
        TIMELINE_SWITCH record on ``new_tli``, flush it and update control.
        Returns the switch LSN (where the new timeline starts)."""
        with self._lock:
            self.replay_up_to(self.wal.write_lsn)
            switch_lsn = self.wal.write_lsn
            hist = self.history().branch(new_tli, switch_lsn, reason)
            write_history(_dirs(self.data_dir)["timelines"], hist)
            rec = TimelineSwitch(new_tli, self.timeline, switch_lsn, term, reason)
            _, end = self.wal.append(encode(rec), new_tli)
            self.state.apply(rec, end)
        self.wal.flush(end)
        self.set_control(timeline=new_tli, term=max(term, self._control.term))
        return switch_lsn

    def skip_lost_tail(self) -> tuple[int, int]:
        """After a crash, before a primary writes anything new: append a SKIP
        record at the recovered WAL end E, long enough that the next record
        starts past E + SHIP_AHEAD, and flush it. A standby may hold up to
        SHIP_AHEAD bytes past E that this node shipped and then lost; their
        LSNs now lie inside the SKIP record, so the sender sees that the
        standby's WAL end is not a record start here and makes it rewind,
        instead of streaming different records at the same LSNs. Returns
        (E, end of the SKIP record)."""
        with self._lock:
            start = self.wal.write_lsn
            _, end = self.wal.append(encode(Skip(start, SKIP_PAD)), self.state.timeline)
            self.state.apply(Skip(start, SKIP_PAD), end)
        self.wal.flush(end)
        return start, end

    def skip_holding(self, lsn: int) -> int | None:
        """The start of the SKIP record that ``lsn`` lies inside (where a
        standby holding WAL this node shipped and lost must rewind to), or
        None if ``lsn`` is not inside one."""
        rec = self.wal.record_holding(lsn, SKIP_TOTAL)
        if rec is None or not is_skip(rec.payload):
            return None
        return rec.start if decode(rec.payload).recovered_end == rec.start else None

    def set_control(self, **changes) -> ControlData:
        """Durably update fields of the control file (role, timeline, term, upstream, clean)."""
        with self._lock:
            self._control = dataclasses.replace(self._control, **changes)
            write_control(self.data_dir, self._control)
            return self._control

    # ------------------------------------------------------- checkpoints
    def checkpoint(self, slot_min_lsn: int | None = None) -> ckpt.CheckpointInfo:
        """Flush WAL to the state's position, write a checkpoint, keep the
        newest ``KEEP_CHECKPOINTS`` and recycle WAL nobody needs."""
        with self._ckpt_lock:
            dirs = _dirs(self.data_dir)
            existing = ckpt.list_checkpoints(dirs["checkpoints"])
            if existing and self._only_skips_since(existing[0].redo_lsn):
                # Nothing new since the last one (or only SKIP records: a
                # crash loop must not push out the checkpoints below them,
                # or the rewind after it would need a re-clone).
                info = existing[0]
            else:
                snap = self.state.snapshot()
                self.wal.flush(ckpt.snapshot_lsn(snap))   # redo LSN never past durable WAL
                info = ckpt.write_snapshot(dirs["checkpoints"], snap)
            # A standby's state may include the last SHIP_AHEAD bytes, which
            # its primary may not have made durable: keep the newest
            # checkpoint below them, for a rewind to there.
            below = self.wal.write_lsn - SHIP_AHEAD if self._control.role is Role.STANDBY else None
            kept = ckpt.prune(dirs["checkpoints"], KEEP_CHECKPOINTS, also_at_or_below=below)
            self.recycle(slot_min_lsn, kept)
            return info

    def _only_skips_since(self, lsn: int) -> bool:
        """Is every record the state applied after ``lsn`` a SKIP? (Looks
        only at a short stretch: a few SKIP records at most.)"""
        end = self.state.applied_lsn
        if end < lsn or end - lsn > 4 * SKIP_TOTAL:
            return False
        return all(is_skip(r.payload) for r in self.wal.iter_records(lsn, end))

    def recycle(self, slot_min_lsn: int | None = None, kept=None) -> int:
        """Remove WAL segments below min(oldest kept checkpoint, slot_min_lsn)."""
        kept = kept if kept is not None else ckpt.list_checkpoints(_dirs(self.data_dir)["checkpoints"])
        if not kept:
            return 0
        keep_from = min(c.redo_lsn for c in kept)
        if slot_min_lsn is not None:
            keep_from = min(keep_from, slot_min_lsn)
        return self.wal.recycle(keep_from)

    # ------------------------------------------------------------ rewind
    def rewind_to(self, lsn: int) -> int:
        """Drop all WAL at/after ``lsn`` and rebuild the state from the newest
        good checkpoint at or before it. An ``lsn`` inside a record rewinds
        to that record's start. Returns the new WAL end. Raises NeedsReclone
        if WAL or checkpoints needed for that are gone."""
        with self._lock:
            if lsn >= self.wal.write_lsn and lsn >= self.state.applied_lsn:
                return self.wal.write_lsn
            if lsn < self.wal.oldest_lsn:
                raise NeedsReclone(f"cannot rewind to {format_lsn(lsn)}: WAL before "
                                   f"{format_lsn(self.wal.oldest_lsn)} was removed")
            dirs = _dirs(self.data_dir)
            found = ckpt.load_latest(dirs["checkpoints"], at_or_before=lsn,
                                     not_below=self.wal.oldest_lsn)
            if found is None:
                raise NeedsReclone(f"no checkpoint at or before {format_lsn(lsn)} with its WAL retained")
            state = found[0]                             # rebuilt aside: reads see the old one till done
            lsn = self._replay(state, lsn)               # whole records that end by lsn: a boundary
            self.last_discard = self._count(lsn)
            ckpt.remove_after(dirs["checkpoints"], lsn)   # before the WAL: crash-safe order
            self.wal.truncate(lsn)
            self.state = state
            remove_histories_after(dirs["timelines"], self.state.timeline)
            self.set_control(timeline=self.state.timeline)
            return self.wal.write_lsn

    def _count(self, lsn: int) -> tuple[int, int, int, int, int]:
        """(from, to, bytes, records, transactions) of the WAL from ``lsn`` (a
        record start) to the end, SKIP padding left out; -1 counts on corrupt WAL."""
        end, size, records, txns = self.wal.write_lsn, 0, 0, 0
        try:
            for rec in self.wal.iter_records(lsn):
                kind = rec.payload[0] if rec.payload else 0
                if kind == RecordType.SKIP:
                    continue
                size, records = size + rec.end - rec.start, records + 1
                txns += kind in (RecordType.PUT, RecordType.DELETE, RecordType.BATCH)
        except (CorruptWal, EngineError):
            return lsn, end, end - lsn, -1, -1
        return lsn, end, size, records, txns

    def close(self) -> None:
        self.wal.close()


def _fresh_dirs(data_dir: str) -> dict[str, str]:
    """Empty storage directories for a new database. Without a control file
    the directory was never initialized (the control file is written last), so
    anything in them is the leftover of an interrupted bootstrap or clone."""
    dirs = _dirs(data_dir)
    for d in dirs.values():
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    return dirs


def _dirs(data_dir: str) -> dict[str, str]:
    return {"wal": os.path.join(data_dir, "wal"),
            "checkpoints": os.path.join(data_dir, "checkpoints"),
            "timelines": os.path.join(data_dir, "timelines")}
