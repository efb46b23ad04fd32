"""Where the orchestrators serve: ``orchestrators/<id>`` in etcd.

Each orchestrator writes its ``OrchestratorRecord`` (id, Cluster service
address, version) bound to its election lease, so the key lives exactly as
long as the orchestrator does. Operators' tools (``walrus ctl --etcd``) read
it to find the cluster from an etcd address. Nothing decides on it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from walrus_ha.common.dcs import Dcs, encode
from walrus_ha.common.log import log_event
from walrus_ha.common.records import MalformedRecord, OrchestratorRecord, parse_json

log = logging.getLogger(__name__)


def register(dcs: Dcs, lease_id: int, record: OrchestratorRecord, *, deadline_s: float | None = None) -> None:
    """Put ``orchestrators/<id>`` bound to ``lease_id``. LeaseLost / DcsUnavailable."""
    dcs.put_leased(dcs.keys.orchestrator_entry(record.id), encode(record), lease_id,
                   f"register orchestrator {record.id}", deadline_s=deadline_s)


def announcer(dcs: Dcs, orch_id: str, address: str, version: str, *,
              deadline_s: float | None = None) -> Callable[[int], None]:
    """``announce(lease_id)`` for ``Election``: registers this orchestrator under each new lease."""
    started_at = time.time()

    def announce(lease_id: int) -> None:
        register(dcs, lease_id, OrchestratorRecord(orch_id, address, version, started_at), deadline_s=deadline_s)
    return announce


def registered(dcs: Dcs, *, deadline_s: float | None = None) -> tuple[str, list[OrchestratorRecord]]:
    """(id of the active orchestrator or "", the registered orchestrators by
    id); one read. Malformed records are logged and skipped. DcsUnavailable."""
    entries, active_value = dcs.read_prefix_and_key(dcs.keys.orchestrators_prefix, dcs.keys.orchestrator,
                                                    deadline_s=deadline_s)
    records = []
    for key, value in entries:
        try:
            records.append(OrchestratorRecord.from_json(value))
        except MalformedRecord as exc:
            log_event(log, "skip malformed key", logging.WARNING, key=key.decode(errors="replace"),
                      problem=str(exc))
    active = ""
    if active_value is not None:
        try:
            parsed = parse_json(active_value)
        except MalformedRecord:
            parsed = ""
        active = parsed if isinstance(parsed, str) else ""
    return active, sorted(records, key=lambda r: r.id)


def ordered(active: str, records: list[OrchestratorRecord]) -> list[OrchestratorRecord]:
    """The records with an address, the active orchestrator's first, then by id (pure)."""
    return [r for r in sorted(records, key=lambda r: (r.id != active, r.id)) if r.address]
