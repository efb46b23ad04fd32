"""Role changes of ``EmbeddedEngine``: promote, demote, follow, rejoin, re-clone,
and the fencing entry points.

Kept apart from life cycle, data path and status so each module stays small;
the mixin relies on the engine's private state (``_role_lock``, ``_gate``,
``_senders``, ``_draining`` ...) and helpers (``_start_receiver``,
``_stop_senders``, ``_open_storage`` ...). Every change is serialized by
``_role_lock``, checks the term first (``StaleTerm``) and is idempotent.

A demotion (``demote``, or ``follow`` on a primary) refuses new writes at once,
flushes, and lets the WAL senders ship everything up to that final flush LSN
(at most ``DEMOTE_DRAIN_S``) before it stops them, so no standby misses the
tail a switchover waits for.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping

import grpc

from walrus_ha.common.errors import EngineError, NeedsReclone, StaleTerm
from walrus_ha.common.log import log_event
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.engine.base import EngineStatus, RejoinMethod, Role, SyncSpec, Upstream
from walrus_ha.node.engine.embedded.receiver import check_divergence
from walrus_ha.node.engine.embedded.timeline import latest_timeline

log = logging.getLogger(__name__)

DEMOTE_DRAIN_S = 2.0        # how long a demotion waits for standbys to confirm the final WAL


class TransitionsMixin:
    """Promote / demote / follow / rejoin / fence for ``EmbeddedEngine``."""

    # ------------------------------------------------------------ role changes
    def promote(self, term: int) -> EngineStatus:
        with self._role_lock:
            self._check_term(term)
            if self._role is Role.PRIMARY:
                if term > self.term:
                    self.storage.set_control(term=term)
                return self.status()
            self._require_running()
            self._stop_receiver()
            self._stop_replayer()
            self.storage.flush()
            tldir = os.path.join(self.data_dir, "timelines")
            new_tli = max(self.timeline, latest_timeline(tldir)) + 1
            switch = self.storage.switch_timeline(new_tli, term, f"{self.name} promoted in term {term}")
            self.storage.set_control(role=Role.PRIMARY, term=max(term, self.term), upstream="")
            with self._gate:
                self.ship_ahead_lsn = 0        # a value from an earlier primary life is meaningless now
                self.write_health.reset(f"promoted in term {term}")   # so is a write failure
                self._role = Role.PRIMARY
            self._needs_reclone = ""
            log_event(log, "transition", frm="standby", to="primary", reason=f"promote term={term}",
                      timeline=new_tli, switch=format_lsn(switch))
            return self.status()

    def demote(self, term: int) -> int:
        """Primary -> standby with no upstream; returns the final flush LSN.

        New writes are refused at once; the WAL written so far is flushed and
        the connected standbys get up to ``DEMOTE_DRAIN_S`` to confirm it, so a
        switchover target can reach the old primary's last LSN."""
        with self._role_lock:
            self._require_running()
            if term > self.term:
                self.storage.set_control(term=term)
            if self._role is not Role.STANDBY:
                self._to_standby("demoted")
                try:
                    self.storage.set_control(role=Role.STANDBY, upstream="")
                except OSError as exc:
                    # A full disk is a reason to demote: it must not stop the
                    # demotion. The file still says primary, so a restarted
                    # node comes up fenced and rejoins (never writes alone).
                    log_event(log, "demote_control_not_saved", logging.WARNING, name=self.name, error=exc)
            return self.storage.wal.flush_lsn

    def _to_standby(self, reason: str) -> None:
        with self._gate:        # no write appends after this (the role check is under the gate)
            self._draining = True
            self._role = Role.STANDBY
            self.write_health.reset(reason)
        try:
            final = self.storage.flush()
            confirmed = self._drain_senders(final, DEMOTE_DRAIN_S)
        finally:
            self._draining = False
        self.syncrep.abort_waiters(f"{self.name} is no longer primary ({reason})")
        self._stop_senders()
        self._start_replayer()
        log_event(log, "transition", frm="primary", to="standby", reason=reason,
                  final_flush=format_lsn(final), confirmed_by=",".join(confirmed) or "-")

    def _drain_senders(self, lsn: int, timeout_s: float) -> list[str]:
        """Wait (at most ``timeout_s``) until every connected standby confirmed
        flushing ``lsn``; returns the names that did."""
        deadline = time.monotonic() + timeout_s
        with self._senders_lock:
            senders = list(self._senders.values())
        done = []
        for s in senders:
            if s.wait_flushed(lsn, deadline):
                done.append(s.name)
            else:
                log_event(log, "demote_drain_incomplete", logging.WARNING, standby=s.name,
                          flushed=format_lsn(s.flush_lsn), final=format_lsn(lsn), stopped=s.stopped)
        return done

    def follow(self, upstream: Upstream, term: int) -> None:
        self._follow(upstream, term, must_reach=False)

    def _follow(self, upstream: Upstream, term: int, must_reach: bool) -> RejoinMethod:
        with self._role_lock:
            self._require_running()
            self._check_term(term)
            if term > self.term:
                self.storage.set_control(term=term)
            r = self.receiver
            if (self._role is Role.STANDBY and r is not None and not r.stopped
                    and r.upstream.address == upstream.address and not self._needs_reclone):
                return RejoinMethod.NONE
            if self._role is Role.PRIMARY:
                self._to_standby(f"following {upstream}")
            self._stop_receiver()
            method = RejoinMethod.NONE
            try:
                fork = check_divergence(self.storage, upstream)
            except grpc.RpcError as exc:
                if must_reach:
                    raise EngineError(f"cannot reach {upstream}: {exc.details() or exc.code()}") from None
                fork = None
            if fork is not None:
                self.rewind(fork, str(upstream))
                method = RejoinMethod.REWOUND
            self.storage.set_control(role=Role.STANDBY, upstream=str(upstream))
            self._needs_reclone = ""
            self._start_replayer()
            self._start_receiver(upstream)
            log_event(log, "follow", name=self.name, upstream=upstream, method=method.value)
            return method

    def rejoin(self, upstream: Upstream, term: int, allow_reclone: bool = True) -> RejoinMethod:
        with self._role_lock:
            known_gap = self._needs_reclone or self._reclone_requested   # slot lost / WAL removed / reinit
            if not (known_gap and allow_reclone):
                try:
                    return self._follow(upstream, term, must_reach=True)
                except NeedsReclone:
                    if not allow_reclone:
                        raise
            self._check_term(term)
            self._reclone(upstream)
            if term > self.term:
                self.storage.set_control(term=term)
            self._start_receiver(upstream)
        return RejoinMethod.RECLONED

    def _reclone(self, upstream: Upstream) -> None:
        """Replace the data dir with a fresh base backup of ``upstream``."""
        self._stop_receiver()
        self._stop_replayer()
        with self._gate:
            self._role = Role.STANDBY
        self.syncrep.abort_waiters(f"{self.name} is being re-cloned")
        self._stop_senders()
        old = self.data_dir.rstrip("/") + ".reclone-old"
        shutil.rmtree(old, ignore_errors=True)
        self.storage.close()
        os.rename(self.data_dir, old)
        try:
            self.clone(upstream)
        except Exception:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            os.rename(old, self.data_dir)
            self._open_storage()
            raise
        shutil.rmtree(old, ignore_errors=True)
        self._open_storage()
        self._needs_reclone = ""
        self._reclone_requested = ""
        self._start_replayer()
        log_event(log, "recloned", name=self.name, upstream=upstream)

    def _check_term(self, term: int) -> None:
        if term < self.term:
            raise StaleTerm(f"term {term} is older than term {self.term} already seen by {self.name}")

    def _require_running(self) -> None:
        if self.storage is None:
            raise EngineError(f"engine {self.name} is not started")

    # ------------------------------------------------------------ fencing
    def fence(self, reason: str) -> None:
        self.syncrep.fence(reason)
        log_event(log, "fenced", name=self.name, reason=reason)

    def unfence(self) -> None:
        self.syncrep.unfence()

    def set_lease_deadline(self, deadline: float | None) -> None:
        self.syncrep.set_lease_deadline(deadline)

    def set_sync_standbys(self, spec: SyncSpec) -> None:
        self.syncrep.set_spec(spec)

    def apply_parameters(self, parameters: Mapping[str, str]) -> tuple[str, ...]:
        """PostgreSQL parameters mean nothing to the embedded engine: ignored."""
        return ()
