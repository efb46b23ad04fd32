"""Keeps the role-aware gRPC health names of a node agent current.

``walrus.primary`` is SERVING exactly when ``probes.is_primary`` holds and
``walrus.replica`` when ``probes.is_replica`` does (the HTTP API's
``/primary`` and ``/replica`` rules). A thread polls the agent's probe facts
every ``interval_s`` (they cost attribute reads and a short lock) and sets
the ``HealthBoard``; it stops with ``stop()``, setting both NOT_SERVING.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from walrus_ha.common import grpchealth
from walrus_ha.node.agent import probes

log = logging.getLogger(__name__)

POLL_S = 0.05


def role_flags(facts: probes.MemberFacts) -> dict[str, bool]:
    """Service name -> serving for the role names (pure)."""
    return {grpchealth.PRIMARY: probes.is_primary(facts), grpchealth.REPLICA: probes.is_replica(facts)}


class RoleHealth:
    def __init__(self, board: grpchealth.HealthBoard, facts: Callable[[], probes.MemberFacts],
                 interval_s: float = POLL_S):
        self.board = board
        self.facts = facts
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.board.set_all(role_flags(_NONE).keys(), False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="role-health", daemon=True)
        self._thread.start()

    def update(self) -> None:
        for name, serving in role_flags(self.facts()).items():
            self.board.set(name, serving)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.update()
            except Exception:       # a bug must not freeze the names; log it and go on
                log.exception("role health update failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.board.set_all(role_flags(_NONE).keys(), False)


_NONE = probes.facts_from(None, None, holds_leader=False, lease_valid=False, loop_age_s=0.0, loop_limit_s=0.0,
                          stopping=True)

__all__ = ["RoleHealth", "role_flags"]
