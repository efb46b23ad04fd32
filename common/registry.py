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

from etcd3 import etcdrpc

from walrus_ha.common.dcs import Dcs, encode, op_get
from walrus_ha.common.log import log_event
from walrus_ha.common.records import MalformedRecord, OrchestratorRecord, parse_json

log = logging.getLogger(__name__)


def register(dcs: Dcs, lease_id: int, record: OrchestratorRecord, *, deadline_s: float | None = None) -> None:
    """Put ``orchestrators/<id>`` bound to ``lease_id``. LeaseLost / DcsUnavailable."""
    req = etcdrpc.PutRequest(key=dcs.keys.orchestrator_entry(record.id).encode(), value=encode(record),
                             lease=lease_id)
    dcs.call(f"register orchestrator {record.id}", lambda ep, t: ep.kv.Put(req, timeout=t), deadline_s)


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
    k = dcs.keys
    prefix = k.orchestrators_prefix.encode()          # ends in "/": the range ends at "0"
    req = etcdrpc.TxnRequest(success=[op_get(k.orchestrators_prefix, prefix[:-1] + b"0"), op_get(k.orchestrator)])
    resp = dcs.call("read orchestrators", lambda ep, t: ep.kv.Txn(req, timeout=t), deadline_s)
    records = []
    for kv in resp.responses[0].response_range.kvs:
        try:
            records.append(OrchestratorRecord.from_json(kv.value))
        except MalformedRecord as exc:
            log_event(log, "skip malformed key", logging.WARNING, key=kv.key.decode(errors="replace"),
                      problem=str(exc))
    active = ""
    for kv in resp.responses[1].response_range.kvs:
        try:
            value = parse_json(kv.value)
        except MalformedRecord:
            continue
        active = value if isinstance(value, str) else ""
    return active, sorted(records, key=lambda r: r.id)


def ordered(active: str, records: list[OrchestratorRecord]) -> list[OrchestratorRecord]:
    """The records with an address, the active orchestrator's first, then by id (pure)."""
    return [r for r in sorted(records, key=lambda r: (r.id != active, r.id)) if r.address]
