"""Whether this primary can write, for status, logs and the orchestrator.

The rule: a failed WAL append or flush (disk full, I/O error) opens an
episode, remembered with the time of its first failure; the episode ends
only when writes succeed for ``clear_after_s`` (1 s) with no failure in
between. Each is logged once; nothing is logged per write. Without that
grace a full disk flapped: small writes that still fit in the current WAL
segment cleared the flag between the failures of larger ones, so the
episode restarted every few milliseconds (two log lines each) and
``primary_write_failure_timeout`` never ran out (``walrus drill disk-full``). The
orchestrator reads ``error`` / ``since`` from the status and fails over a
primary that cannot write for longer than ``primary_write_failure_timeout``.

An episode belongs to one spell as primary: a role change ends it
(``reset``). A demoted node never writes, so nothing else would end it, and
when it was promoted again later it reported the old failure with the old
``since``: the orchestrator saw "cannot write for 60 s" at once and failed
it over again, a chain of failovers (``walrus drill disk-full``, embedded).
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

    def __init__(self, name: str, clock: Callable[[], float] = time.time, clear_after_s: float = 1.0):
        self.name = name
        self.error = ""
        self.since = 0.0
        self.clear_after_s = clear_after_s
        self._last_failure = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        """A write step (``what``: append, flush) failed with ``exc``."""
        text = f"{what} failed: {exc}"
        with self._lock:
            first = not self.error
            self.error = text
            self._last_failure = self._clock()
            if first:
                self.since = self._last_failure
        if first:
            log_event(log, "writes_failing", logging.ERROR, name=self.name, reason=text)

    def succeeded(self) -> None:
        """A write was appended and flushed: end the episode once no write
        failed for ``clear_after_s`` (cheap if none)."""
        if not self.error:
            return
        with self._lock:
            now = self._clock()
            if not self.error or now - self._last_failure < self.clear_after_s:
                return
            lasted = now - self.since
            was, self.error, self.since = self.error, "", 0.0
        log_event(log, "writes_recovered", logging.WARNING, name=self.name, failing_s=f"{lasted:.1f}",
                  last_error=was)

    def reset(self, why: str) -> None:
        """End the episode without a success (the role changed: ``why``); a
        failure after this opens a new one with its own ``since``."""
        with self._lock:
            was, self.error, self.since, self._last_failure = self.error, "", 0.0, 0.0
        if was:
            log_event(log, "writes_episode_ended", logging.WARNING, name=self.name, reason=why, last_error=was)
