"""Complete failover history records with the exact RPO receipt.

The one rule: a history record's receipt is completed once, from what the
old leader itself reports it discarded when it rejoined (member record
``discarded``: fork point to its WAL end, as its rewind saw it). The record
completed is the newest one whose ``old_leader`` that member is, at a term
no later than the one it rejoined, started before the report, and not
completed yet. ``pick`` is pure; ``Receipts`` does the etcd reads and writes
for the active orchestrator, once per report.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event
from walrus_ha.common.records import ClusterView, HistoryRecord

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 50          # reads of history without a record for a report: it belongs to none


def _int(report: Mapping[str, Any], key: str, default: int = 0) -> int:
    try:
        return int(report.get(key, default))
    except (TypeError, ValueError):
        return default


def pick(history: Iterable[HistoryRecord], member: str, report: Mapping[str, Any]) -> HistoryRecord | None:
    """The history record ``report`` completes, already completed, or None
    when no record matches (yet)."""
    term, at = _int(report, "term"), float(report.get("at", 0.0) or 0.0)
    matching = [r for r in history if r.old_leader == member and r.new_leader != member
                and r.term <= term and r.started_at <= at]
    if not matching:
        return None
    rec = max(matching, key=lambda r: r.term)
    if rec.discarded_by:
        return rec
    return replace(rec, discarded_by=member, discarded_bytes=_int(report, "bytes", -1),
                   discarded_records=_int(report, "records", -1),
                   discarded_transactions=_int(report, "transactions", -1),
                   discard_fork_lsn=_int(report, "fork_lsn"), discard_end_lsn=_int(report, "end_lsn"))


class Receipts:
    """Completes history records from the members' ``discarded`` reports."""

    def __init__(self, dcs: Any, deadline_s: float) -> None:
        self.dcs = dcs
        self.deadline_s = deadline_s
        self._tries: dict[tuple, int] = {}      # report key -> history reads without a match (-1: done)

    def complete(self, view: ClusterView) -> None:
        """Complete what the members' reports in ``view`` allow. Never raises
        for etcd trouble (the next loop tries again)."""
        pending = {}
        for m in view.members:
            if m.discarded:
                key = (m.name, _int(m.discarded, "term"), m.discarded.get("at"))
                if self._tries.get(key, 0) >= 0:
                    pending[key] = (m.name, m.discarded)
        if not pending:
            return
        try:
            history = self.dcs.list_history(20, deadline_s=self.deadline_s)
            for key, (name, report) in pending.items():
                self._one(key, name, report, history)
        except (DcsUnavailable, LeaseLost) as exc:
            log_event(log, "receipt", level=logging.WARNING, error=exc)

    def _one(self, key: tuple, name: str, report: Mapping[str, Any], history: list[HistoryRecord]) -> None:
        rec = pick(history, name, report)
        if rec is None:
            tries = self._tries.get(key, 0) + 1
            self._tries[key] = -1 if tries >= GIVE_UP_AFTER else tries
            return
        if rec not in history:
            self.dcs.put_history(rec, deadline_s=self.deadline_s)
            log_event(log, "history.receipt", term=rec.term, old_leader=name, discarded_bytes=rec.discarded_bytes,
                      records=rec.discarded_records, transactions=rec.discarded_transactions,
                      reason="the old leader rejoined and reported the WAL it discarded")
        self._tries[key] = -1
