"""Whether the PostgreSQL data directory's filesystem has room to write.

PostgreSQL answers a full disk with an ERROR per statement ("could not
extend file ... No space left on device") or a PANIC for WAL, and tells
nobody else: the agent reported the primary healthy while no write could
succeed (``walrus drill disk-full --engine postgres``: no takeover in 45 s).
``DiskSpace.check()`` reads ``statvfs`` (one syscall) and reports the
filesystem as unable to take writes while less than ``MIN_FREE_BYTES`` are
free to unprivileged users, with the wall time it was first seen so; the
orchestrator replaces such a primary after ``primary_write_failure_timeout``
as it does an embedded one whose writes fail. Logged once on each change.
Only a primary checks; ``reset`` at promotion starts a new episode (a full
disk seen in an earlier spell as primary would carry its old ``since``).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 1 << 20


class DiskSpace:
    """``check() -> (error, since)``: ("", 0.0) while there is room."""

    def __init__(self, path: str, min_free: int = MIN_FREE_BYTES, clock: Callable[[], float] = time.time,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> None:
        self.path = path
        self.min_free = min_free
        self._clock, self._statvfs = clock, statvfs
        self.error = ""
        self.since = 0.0

    def check(self) -> tuple[str, float]:
        try:
            st = self._statvfs(self.path)
        except OSError:
            return self.error, self.since          # not there yet (bootstrap): keep what we knew
        free = st.f_bavail * st.f_frsize
        if free < self.min_free:
            if not self.error:
                self.since = self._clock()
                log_event(log, "writes_failing", logging.ERROR, path=self.path, free_bytes=free,
                          reason="the data directory's filesystem is full")
            self.error = f"the data directory's filesystem is full ({free} bytes free)"
        elif self.error:
            log_event(log, "writes_recovered", logging.WARNING, path=self.path, free_bytes=free,
                      failing_s=f"{self._clock() - self.since:.1f}")
            self.error, self.since = "", 0.0
        return self.error, self.since

    def reset(self) -> None:
        """Forget the current episode (a new spell as primary begins)."""
        self.error, self.since = "", 0.0
