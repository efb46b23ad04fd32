"""Whether this primary can write, for status, logs and the orchestrator.

The rule: a failed WAL append or flush (disk full, I/O error) is remembered
with the time of the first failure in a row, logged once when writes start
failing and once when one succeeds again; nothing is logged per write. The
orchestrator reads ``error`` / ``since`` from the status and fails over a
primary that cannot write for longer than ``primary_write_failure_timeout``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)


class WriteHealth:
    """``error`` ("" = writes work) and ``since`` (unix time of the first
    failure in a row, 0.0 when none). Thread-safe; ``clock`` is wall time
    (the value is compared by another process)."""

    def __init__(self, name: str, clock: Callable[[], float] = time.time):
        self.name = name
        self.error = ""
        self.since = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        """A write step (``what``: append, flush) failed with ``exc``."""
        text = f"{what} failed: {exc}"
        with self._lock:
            first = not self.error
            self.error = text
            if first:
                self.since = self._clock()
        if first:
            log_event(log, "writes_failing", logging.ERROR, name=self.name, reason=text)

    def succeeded(self) -> None:
        """A write was appended and flushed: clear a failure (cheap if none)."""
        if not self.error:
            return
        with self._lock:
            if not self.error:
                return
            lasted = self._clock() - self.since
            was, self.error, self.since = self.error, "", 0.0
        log_event(log, "writes_recovered", logging.WARNING, name=self.name, failing_s=f"{lasted:.1f}",
                  last_error=was)
