"""Test-side reads and writes of etcd that production code does not need
(so they are not ``Dcs`` methods): built on ``Dcs``'s public calls."""
from __future__ import annotations

import time

from etcd3 import etcdrpc

from walrus_ha.common.dcs import Dcs


def lease_ttl(dcs: Dcs, lease_id: int) -> float:
    """Remaining TTL of a lease without refreshing it (<= 0: gone)."""
    req = etcdrpc.LeaseTimeToLiveRequest(ID=lease_id)
    resp = dcs.call("lease ttl", lambda ep, t: ep.lease.LeaseTimeToLive(req, timeout=t))
    return float(resp.TTL)


def delete_member(dcs: Dcs, name: str) -> bool:
    """Delete ``members/<name>``; True if it existed."""
    return dcs.delete(dcs.keys.member(name))


def current_orchestrator(dcs: Dcs) -> str | None:
    """The active orchestrator's id, or None (absent or malformed)."""
    current, _ = dcs.get(dcs.keys.orchestrator)
    return current if isinstance(current, str) else None


def request_switchover(dcs: Dcs, leader: str, candidate: str = "", *, requested_by: str = "",
                       scheduled_at: float | None = None) -> bool:
    """Write a switchover request away from ``leader`` (create-if-absent):
    False if another request is pending."""
    value = {"leader": leader, "candidate": candidate, "requested_by": requested_by,
             "scheduled_at": scheduled_at, "requested_at": time.time()}
    return dcs.cas_put(dcs.keys.switchover, value, 0)
