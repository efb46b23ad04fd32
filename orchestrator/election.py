"""Election of the active orchestrator through etcd.

The one rule: an orchestrator acts only while it can prove it holds the
``orchestrator`` key. Every orchestrator grants a lease of ``ttl`` and
campaigns (create-if-absent ``orchestrator`` bound to that lease); the winner
is active, the others are hot spares that keep campaigning on every tick and
take over as soon as the key is gone (lease expired, or revoked on shutdown).

The active one renews its lease every ``ttl/3``; a renewal that fails makes
it stop acting at once, and it counts itself active only until ``t_sent +
ttl - margin`` of the last renewal that succeeded (monotonic clock, counted
from the *sending* of the request), so even a renewal that hangs makes it
stop before a spare can win.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)


class ElectionDcs(Protocol):
    """The part of ``common.dcs.Dcs`` the election uses."""

    def grant_lease(self, ttl: float) -> int: ...
    def refresh_lease(self, lease_id: int) -> float: ...
    def revoke_lease(self, lease_id: int) -> None: ...
    def campaign(self, orch_id: str, lease_id: int) -> bool: ...


class Election:
    """Campaign for and hold the ``orchestrator`` key.

    ``tick()`` is called periodically (``run()`` does it in a thread); it
    grants a lease when there is none, renews it when due, and campaigns while
    not active. ``is_active()`` is the one question the controller asks
    before every action. ``resign()`` revokes the lease so a spare takes over
    at once. Never raises from ``tick``: etcd errors make us a spare.
    """

    def __init__(self, dcs: ElectionDcs, orch_id: str, ttl: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None,
                 announce: Callable[[int], None] | None = None) -> None:
        self._dcs = dcs
        self.orch_id = orch_id
        self.ttl = ttl                 # the ttl of the lease we hold (or will grant next)
        self._next_ttl = ttl
        self.interval = 1.0            # tick period while started (``start``)
        self._clock = clock
        self._on_change = on_change
        self._announce = announce      # publish where we serve, bound to each new lease
        self._announced: int | None = None
        self._lock = threading.Lock()
        self._lease: int | None = None
        self._active = False
        self._valid_until = 0.0      # monotonic instant our lease is proven until
        self._last_refresh = -1e18
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- queries ---------------------------------------------------------
    @property
    def margin(self) -> float:
        """Stop acting this long before the lease could expire in etcd."""
        return min(1.0, self.ttl / 4)

    def is_active(self) -> bool:
        """True while we hold the key and the lease is proven alive."""
        with self._lock:
            return self._active and self._clock() < self._valid_until

    @property
    def lease_id(self) -> int | None:
        return self._lease

    # -- the periodic step -------------------------------------------------
    def tick(self) -> bool:
        """One election step; returns ``is_active()`` afterwards."""
        try:
            self._ensure_lease()
            if self._clock() - self._last_refresh >= self.ttl / 3:
                self._renew()
            self._announce_once()
            if not self._active and self._lease is not None:
                won = self._dcs.campaign(self.orch_id, self._lease)
                if won:
                    self._set_active(True, "won the orchestrator key")
        except LeaseLost as exc:
            self._lease = None
            self._set_active(False, f"lease lost: {exc}")
        except DcsUnavailable as exc:
            # Stop acting at once; if the key is still ours, the next
            # successful renewal + campaign makes us active again.
            self._set_active(False, f"etcd unreachable: {exc}")
        if self._active and self._clock() >= self._valid_until:
            self._set_active(False, "lease renewal overdue")
        return self.is_active()

    def set_ttl(self, ttl: float) -> None:
        """The ttl of the next lease granted (cluster config); the lease held
        keeps its own, which its deadline counts with."""
        self._next_ttl = ttl

    def _ensure_lease(self) -> None:
        if self._lease is None:
            self.ttl = self._next_ttl
            sent = self._clock()
            self._lease = self._dcs.grant_lease(self.ttl)
            self._mark_renewed(sent)

    def _announce_once(self) -> None:
        """Call ``announce(lease)`` once per lease; a failure is retried next
        tick and never changes the election (the record is for tools only)."""
        lease = self._lease
        if self._announce is None or lease is None or self._announced == lease:
            return
        try:
            self._announce(lease)
        except (DcsUnavailable, LeaseLost) as exc:
            log_event(log, "announce", level=logging.WARNING, orchestrator=self.orch_id, error=exc)
            return
        self._announced = lease

    def _renew(self) -> None:
        sent = self._clock()
        self._dcs.refresh_lease(self._lease)
        self._mark_renewed(sent)

    def _mark_renewed(self, sent: float) -> None:
        with self._lock:
            self._last_refresh = sent
            self._valid_until = sent + self.ttl - self.margin

    def _set_active(self, active: bool, reason: str) -> None:
        with self._lock:
            changed = active != self._active
            self._active = active
        if changed:
            log_event(log, "election", orchestrator=self.orch_id,
                      role="active" if active else "spare", reason=reason)
            if self._on_change is not None:
                self._on_change(active)

    # -- thread + shutdown ---------------------------------------------------
    def start(self, interval: float) -> None:
        """Run ``tick`` every ``interval`` seconds (capped at ttl/6) in a thread;
        ``interval`` may change later (``self.interval``, the cluster config)."""
        self.interval = interval

        def loop() -> None:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(max(0.01, min(self.interval, self.ttl / 6)))

        self._thread = threading.Thread(target=loop, name="election", daemon=True)
        self._thread.start()

    def resign(self) -> None:
        """Stop campaigning and revoke our lease so a spare takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        lease, self._lease = self._lease, None
        self._set_active(False, "resigned")
        if lease is not None:
            try:
                self._dcs.revoke_lease(lease)
            except (DcsUnavailable, LeaseLost) as exc:
                log_event(log, "resign", level=logging.WARNING, error=exc)
