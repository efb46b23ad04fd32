"""Operator requests: what a switchover/failover request asks (the
``switchover`` key) and how it ended (``ClearSwitchover.outcome``).

Plain frozen data, no I/O (part of the pure core; ``model`` re-exports both).
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class RequestOutcome(enum.Enum):
    """How an operator's switchover/failover request ended (``ClearSwitchover``)."""
    DONE = "done"                # the requested member (or the best one, if none named) leads
    REFUSED = "refused"          # impossible or abandoned; nothing changed because of it
    SUPERSEDED = "superseded"    # another failover decided it (e.g. another member won)
    CANCELLED = "cancelled"      # the operator cancelled it (``walrus ctl switchover --cancel``)


@dataclass(frozen=True)
class SwitchoverRequest:
    """An operator's switchover (``candidate`` empty: the best standby).

    ``expected_leader`` empty: whoever leads now. ``failover=True`` marks a
    manual failover request (``Cluster.Failover``): it is honoured only when
    there is no healthy leader, like an automatic failover to ``candidate``.
    ``force=True`` (failover only): promote ``candidate`` even though no
    member provably holds every acknowledged write (the operator accepts the
    possible loss; see ``decide._forced``). ``scheduled_at`` (wall time, 0 =
    at once): not started before then (``schedule.switchover_due``).
    """
    candidate: str = ""
    expected_leader: str = ""
    requested_at: float = 0.0
    failover: bool = False
    force: bool = False
    scheduled_at: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SwitchoverRequest | None:
        """From the ``switchover`` key's JSON object (unknown keys ignored)."""
        if not data:
            return None
        return cls(candidate=str(data.get("candidate", "") or ""),
                   expected_leader=str(data.get("expected_leader", "") or ""),
                   requested_at=float(data.get("requested_at", 0.0) or 0.0),
                   failover=bool(data.get("failover", False)), force=bool(data.get("force", False)),
                   scheduled_at=float(data.get("scheduled_at", 0.0) or 0.0))
