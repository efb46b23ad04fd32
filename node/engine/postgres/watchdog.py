"""Lease watchdog: fence the engine when the lease deadline passes unextended.

PostgreSQL cannot check a deadline before each commit acknowledgement, so the
engine runs this small thread instead: ``set(deadline)`` arms or extends it,
``set(None)`` disarms it, and when ``clock()`` reaches an armed deadline it
calls ``on_expire()`` once (until armed again). The residual risk, documented
in the engine: commits acknowledged between the deadline and the fence taking
effect (the thread's wake-up latency plus the fence's own reload/terminate,
typically a few milliseconds); the agent's ``safety_margin`` must cover it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from walrus.log import log_event

log = logging.getLogger(__name__)


class LeaseWatchdog:
    """Calls ``on_expire`` once when the armed monotonic deadline passes."""

    def __init__(self, on_expire: Callable[[], None], clock: Callable[[], float] = time.monotonic):
        self._on_expire = on_expire
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="walrus-pg-lease-watchdog", daemon=True)
        self._thread.start()

    @property
    def deadline(self) -> float | None:
        with self._cond:
            return self._deadline

    def set(self, deadline: float | None) -> None:
        """Arm, extend or (``None``) disarm."""
        with self._cond:
            self._deadline = deadline
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._deadline is None or self._clock() < self._deadline):
                    wait = None if self._deadline is None else max(0.0, self._deadline - self._clock())
                    self._cond.wait(wait)
                if self._closed:
                    return
                expired, self._deadline = self._deadline, None
            log_event(log, "lease.deadline_passed", deadline=f"{expired:.3f}", level=logging.WARNING)
            try:
                self._on_expire()
            except Exception as exc:  # keep watching; the agent sees the engine's status
                log_event(log, "lease.fence_failed", error=exc, level=logging.ERROR)
