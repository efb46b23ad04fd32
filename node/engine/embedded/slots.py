"""Physical replication slots: per-standby WAL retention with a cap.

The rule: **WAL a non-lost slot needs is never recycled; a slot whose
retention would exceed ``max_slot_wal_keep_size`` is marked lost instead, and
a lost slot never streams again** (its standby must re-clone).

``plan_retention`` is the pure decision; ``SlotStore`` keeps the slots in
memory and persists them atomically to ``<data_dir>/slots.json``. A slot's
``restart_lsn`` (the standby's confirmed flush LSN) is advanced in memory on
every feedback and written to disk by ``save()`` (the engine calls it at each
checkpoint), like PostgreSQL: after a crash a slot may restart from an older
position, which only retains more WAL, never less.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from walrus_ha.common.log import log_event
from walrus_ha.node.engine.base import SlotInfo

log = logging.getLogger(__name__)

SLOTS_FILE = "slots.json"


@dataclass(frozen=True)
class Slot:
    name: str
    restart_lsn: int
    lost: bool = False


@dataclass(frozen=True)
class RetentionPlan:
    keep_from_lsn: int           # recycle only segments wholly below this
    newly_lost: tuple[str, ...]  # slots to mark lost


def plan_retention(slots: Iterable[Slot], checkpoint_lsn: int, write_lsn: int,
                   max_keep: int) -> RetentionPlan:
    """Decide how much WAL to keep.

    ``checkpoint_lsn``: the redo LSN recovery needs. ``max_keep`` < 0 means no
    cap. A slot that would retain more than ``max_keep`` bytes behind
    ``write_lsn`` is marked lost and stops holding WAL.
    """
    keep = checkpoint_lsn
    lost = []
    for slot in slots:
        if slot.lost:
            continue
        if max_keep >= 0 and write_lsn - slot.restart_lsn > max_keep:
            lost.append(slot.name)
            continue
        keep = min(keep, slot.restart_lsn)
    return RetentionPlan(keep, tuple(sorted(lost)))


class SlotStore:
    """The slots of one node. Thread-safe; persisted by ``save()``."""

    def __init__(self, data_dir: str):
        self._path = os.path.join(data_dir, SLOTS_FILE)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()     # serializes whole saves (tmp write + rename)
        self._slots: dict[str, Slot] = {}
        self._active: set[str] = set()
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            with open(self._path) as f:
                data = json.load(f)
            items = [Slot(str(item["name"]), int(item["restart_lsn"]), bool(item.get("lost", False)))
                     for item in data.get("slots", [])]
        except FileNotFoundError:
            return
        except (ValueError, TypeError, KeyError, AttributeError) as exc:   # JSONDecodeError is a ValueError
            # save() only renames a complete, fsynced file into place, so this is
            # damage from outside. Never stuck: keep it aside and start without
            # slots; each standby recreates its slot when it connects (or
            # re-clones if the WAL it needs was recycled meanwhile).
            aside = self._path + ".unreadable"
            os.replace(self._path, aside)
            log_event(log, "slots_unreadable", logging.ERROR, path=self._path, moved_to=aside,
                      error=f"{type(exc).__name__}: {exc}", then="starting without slots")
            return
        for slot in items:
            self._slots[slot.name] = slot

    def save(self, force: bool = False) -> None:
        """Persist atomically (tmp + fsync + rename + dir fsync) if changed.

        The whole write happens under ``_save_lock`` (one writer at a time: a
        fixed tmp path shared by two writers made one rename fail), and the
        data is taken under it too, so the last rename holds the newest slots."""
        with self._save_lock:
            with self._lock:
                if not (self._dirty or force):
                    return
                data = {"slots": [{"name": s.name, "restart_lsn": s.restart_lsn, "lost": s.lost}
                                  for s in sorted(self._slots.values(), key=lambda s: s.name)]}
                self._dirty = False
            tmp = self._path + ".tmp"
            try:
                with open(tmp, "w") as f:
                    json.dump(data, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._path)
            except BaseException:
                with self._lock:
                    self._dirty = True       # not saved: the next save() tries again
                raise
            dfd = os.open(os.path.dirname(self._path) or ".", os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def get(self, name: str) -> Slot | None:
        with self._lock:
            return self._slots.get(name)

    def all(self) -> list[Slot]:
        with self._lock:
            return sorted(self._slots.values(), key=lambda s: s.name)

    def ensure(self, name: str, restart_lsn: int) -> Slot:
        """Create the slot at ``restart_lsn`` if absent (persisted at once).
        A standby that asks from below its slot (it dropped a tail shipped
        ahead and lost by this primary) moves the slot back to there."""
        with self._lock:
            slot = self._slots.get(name)
            if slot is not None and (slot.lost or slot.restart_lsn <= restart_lsn):
                return slot
            slot = self._slots[name] = Slot(name, restart_lsn)
            self._dirty = True
        self.save()
        return slot

    def reset(self, name: str, restart_lsn: int) -> Slot:
        """(Re)create the slot at ``restart_lsn``, not lost (after a base backup)."""
        with self._lock:
            slot = self._slots[name] = Slot(name, restart_lsn)
            self._dirty = True
        self.save()
        return slot

    def advance(self, name: str, flush_lsn: int) -> None:
        """Move a slot's restart LSN forward (never back); in memory only."""
        with self._lock:
            slot = self._slots.get(name)
            if slot is not None and not slot.lost and flush_lsn > slot.restart_lsn:
                self._slots[name] = replace(slot, restart_lsn=flush_lsn)
                self._dirty = True

    def mark_lost(self, names: Iterable[str]) -> None:
        changed = False
        with self._lock:
            for name in names:
                slot = self._slots.get(name)
                if slot is not None and not slot.lost:
                    self._slots[name] = replace(slot, lost=True)
                    changed = True
            self._dirty = self._dirty or changed
        if changed:
            self.save()

    def enforce_cap(self, write_lsn: int, max_keep: int) -> tuple[int | None, tuple[str, ...]]:
        """Mark slots past ``max_keep`` lost and persist. Returns (the LSN the
        remaining slots need WAL from, or None without slots; newly lost names)."""
        slots = self.all()
        plan = plan_retention(slots, write_lsn, write_lsn, max_keep)
        if plan.newly_lost:
            self.mark_lost(plan.newly_lost)
        self.save()
        return (plan.keep_from_lsn if slots else None), plan.newly_lost

    def set_active(self, name: str, active: bool) -> None:
        with self._lock:
            (self._active.add if active else self._active.discard)(name)

    def info(self, write_lsn: int) -> tuple[SlotInfo, ...]:
        """Slots for ``EngineStatus.slots``."""
        with self._lock:
            return tuple(SlotInfo(s.name, s.restart_lsn, s.name in self._active, s.lost,
                                  0 if s.lost else max(0, write_lsn - s.restart_lsn))
                         for s in sorted(self._slots.values(), key=lambda s: s.name))
