"""Role changes of ``PostgresEngine``: promote, demote, follow, rejoin, fence.

Kept apart from life cycle and status so each module stays small; the mixin
relies on the engine's private helpers (``_op``, ``_save``, ``_session`` ...).
Every operation is idempotent and checks the term first (``StaleTerm``).
"""
from __future__ import annotations

import logging
import time

from walrus_ha.common.errors import EngineError, NeedsReclone, WrongRole
from walrus_ha.common.log import log_event
from walrus_ha.node.engine.base import Discarded, EngineStatus, RejoinMethod, SlotInfo, SyncSpec, Upstream
from walrus_ha.node.engine.postgres import conf, divergence, fencer, rejoinplan, replication, sql
from walrus_ha.node.engine.postgres.process import wait_for

log = logging.getLogger(__name__)


class TransitionsMixin:
    """Promote / demote / follow / rejoin / fence for ``PostgresEngine``."""

    last_discard: Discarded | None = None     # what the last pg_rewind dropped (the exact RPO receipt)

    def promote(self, term: int) -> EngineStatus:
        """``pg_promote(wait => true)``; stamps ``term``. Already primary: only stamps."""
        with self._op:
            self._check_term(term)
            if not self._running():
                raise WrongRole(f"{self.name}: cannot promote, PostgreSQL is not running")
            if self._session.in_recovery():
                # pg_promote(wait => true) polls only every 100 ms; poll faster ourselves.
                self._admin("SELECT pg_promote(false)")
                if not wait_for(lambda: not self._session.in_recovery(), 60.0, 0.005):
                    raise EngineError(f"{self.name}: promotion did not finish within 60s")
                log_event(log, "transition", member=self.name, frm="standby", to="primary", term=term)
            self._save(upstream_name="", upstream_address="")
            self._apply_dynamic()
            self._reset_reclone_scan()
            self._disk.reset()
            return self.status()

    def demote(self, term: int) -> None:
        """Primary -> read-only standby with no upstream (fast shutdown, restart).

        On a full data filesystem (immediate shutdown then) the server stays
        stopped once ``standby.signal`` is written when its files or its
        restart need room there: it acknowledges nothing either way, and a
        stopped standby starts again when the agent rejoins it. Anything else
        that fails raises (the caller keeps the leader key)."""
        with self._op:
            self._check_term(term)
            if self.dir.is_standby() and (self._running() or not self.is_initialized()):
                return
            was_running = self._running()
            self._stop_postmaster()
            self.dir.set_standby_signal(True)   # an empty file: needs no data block on a full disk
            try:
                self._save(upstream_name="", upstream_address="")
                self._write_confs()
                log_event(log, "transition", member=self.name, frm="primary", to="standby", term=term)
                if was_running:
                    self._start_postmaster(primary=False)
            except (OSError, EngineError) as exc:
                if self._running() or not self.disk_full():
                    raise
                log_event(log, "transition", member=self.name, frm="primary", to="stopped standby", term=term,
                          why=f"the data filesystem is full: {exc}", level=logging.WARNING)

    def follow(self, upstream: Upstream, term: int) -> None:
        """Point ``primary_conninfo``/``primary_slot_name`` at ``upstream`` and reload
        (PostgreSQL 13+ restarts the WAL receiver, no server restart). Creates this
        member's slot on the upstream when it can reach it. Raises ``WrongRole`` on
        a primary (rejoin it instead), ``NeedsReclone`` if that slot is lost."""
        with self._op:
            self._check_term(term)
            if not self.dir.is_standby():
                raise WrongRole(f"{self.name}: is a primary; rejoin it to follow {upstream}")
            self._follow_locked(upstream)

    def _follow_locked(self, upstream: Upstream) -> None:
        changed = (self._state.upstream_address, self._state.upstream_name) != (upstream.address, upstream.name)
        try:
            lost = replication.ensure_slot(self._upstream_dsn(upstream), self.name)
        except EngineError as exc:   # upstream down: the WAL receiver keeps retrying
            log_event(log, "follow.slot_unchecked", member=self.name, upstream=upstream, error=exc,
                      level=logging.WARNING)
            lost = False
        if changed:
            self._reset_reclone_scan()
        self._save(upstream_name=upstream.name, upstream_address=upstream.address)
        self._apply_dynamic()
        if changed:
            log_event(log, "follow", member=self.name, upstream=upstream)
        if lost:
            self._needs_reclone = True
            raise NeedsReclone(f"{self.name}: slot {conf.slot_name(self.name)} on {upstream} is lost; re-clone")

    def _streaming_from(self, upstream: Upstream, timeout: float) -> bool:
        host_port = upstream.address

        def ok() -> bool:
            st = self.status()
            return self._needs_reclone or (st.streaming and st.upstream.endswith(host_port))
        return wait_for(ok, timeout, 0.1) and not self._needs_reclone

    def rejoin(self, upstream: Upstream, term: int, allow_reclone: bool = True) -> RejoinMethod:
        """Make this (possibly diverged) node a standby of ``upstream``.

        A standby that streams after a plain follow: NONE. A stopped primary
        whose WAL all lies on the upstream's history starts directly as its
        standby (``divergence``): NONE, no crash recovery, no rewind. Otherwise stop,
        CHECKPOINT the upstream, ``pg_rewind`` from it, start as standby:
        REWOUND (or NONE when nothing diverged); when ``allow_reclone`` and a
        base backup copies far less than pg_rewind would (``rejoinplan``),
        re-clone instead: RECLONED. If rewind fails or the WAL the node needs
        is gone: re-clone (RECLONED) when ``allow_reclone``, else raise
        ``NeedsReclone``. Never starts the node as a primary.
        """
        with self._op:
            self._check_term(term)
            if not self.is_initialized():
                return self._reclone(upstream, allow_reclone, "no database")
            if self._reclone_requested:
                return self._reclone(upstream, allow_reclone, self._reclone_requested)
            tried = False
            if not self._running() and not self._state.incomplete:
                if self.dir.is_standby():
                    self.start()                # a stopped standby: start it, then follow below
                elif self._start_as_standby_if_not_diverged(upstream):
                    return RejoinMethod.NONE
                else:
                    tried = self._running()     # started as a standby but does not stream: rewind
            if self.dir.is_standby() and self._running() and not tried:
                try:
                    self._follow_locked(upstream)
                    if self._streaming_from(upstream, min(10.0, self.stream_timeout_s)):
                        return RejoinMethod.NONE
                except NeedsReclone:
                    return self._reclone(upstream, allow_reclone, "slot lost")
            return self._rewind_and_follow(upstream, allow_reclone)

    def _rewind_and_follow(self, upstream: Upstream, allow_reclone: bool) -> RejoinMethod:
        """Stop, CHECKPOINT the upstream, pg_rewind from it, start as its standby
        (re-clone when that fails and ``allow_reclone``). Caller holds ``_op``."""
        way, why = rejoinplan.rewind_or_clone(self._source_sizes(upstream), allow_reclone)
        if way is rejoinplan.RejoinWay.CLONE:
            return self._clone_instead(upstream, why)
        # PostgreSQL 15 updates the control file's timeline only at the next
        # checkpoint; pg_rewind reads it. Unreachable upstream: raise, touch nothing.
        t = [time.monotonic()]
        sql.execute_once(self._upstream_dsn(upstream), "CHECKPOINT")
        t.append(time.monotonic())
        self._save(incomplete=True)     # until standby.signal is back, never start
        self._stop_postmaster()
        end = divergence.local_wal_end(self.binaries, self.user, str(self.dir.pgdata))
        t.append(time.monotonic())
        try:
            rewound, fork = replication.rewind(self.binaries, self.user, str(self.dir.pgdata),
                                               self._upstream_dsn(upstream), self.op_timeout_s)
        except EngineError as exc:
            return self._reclone(upstream, allow_reclone, f"rewind failed: {exc}")
        self.last_discard = _discarded(end, fork, rewound, upstream, self._state.term)
        t.append(time.monotonic())
        self.dir.set_standby_signal(True)
        self._save(upstream_name="", upstream_address="", incomplete=False)
        try:
            self._follow_locked(upstream)   # writes conf; slot; no reload (stopped)
        except NeedsReclone:
            return self._reclone(upstream, allow_reclone, "slot lost")
        self._write_confs()
        self._start_postmaster(primary=False)
        t.append(time.monotonic())
        if not self._streaming_from(upstream, self.stream_timeout_s) and self._needs_reclone:
            return self._reclone(upstream, allow_reclone, "WAL needed after rewind is gone")
        t.append(time.monotonic())
        method = RejoinMethod.REWOUND if rewound else RejoinMethod.NONE
        ms = [round((b - a) * 1000) for a, b in zip(t, t[1:])]
        log_event(log, "rejoin", member=self.name, upstream=upstream, method=method.value,
                  checkpoint_ms=ms[0], stop_ms=ms[1], rewind_ms=ms[2], start_ms=ms[3], stream_ms=ms[4])
        return method

    def _source_sizes(self, upstream: Upstream) -> rejoinplan.SourceSizes | None:
        try:
            return replication.source_sizes(self._upstream_dsn(upstream))
        except EngineError as exc:
            log_event(log, "rejoin.sizes_unknown", member=self.name, upstream=upstream, error=exc,
                      level=logging.WARNING)
            return None

    def _clone_instead(self, upstream: Upstream, why: str) -> RejoinMethod:
        """Re-clone rather than rewind (``rejoinplan``: it copies less). What
        the node's WAL held past the fork is the receipt, as after a rewind;
        it is published only once the clone succeeded. Caller holds ``_op``."""
        t0 = time.monotonic()
        self._stop_postmaster()
        end = divergence.local_wal_end(self.binaries, self.user, str(self.dir.pgdata))
        fork = self._fork_point(upstream, end)
        t1 = time.monotonic()
        method = self._reclone(upstream, True, why, planned=True)
        self.last_discard = _discarded(end, fork, True, upstream, self._state.term)
        log_event(log, "rejoin", member=self.name, upstream=upstream, method=method.value, why=why,
                  check_ms=round((t1 - t0) * 1000), clone_ms=round((time.monotonic() - t1) * 1000))
        return method

    def _fork_point(self, upstream: Upstream, end: divergence.WalEnd | None) -> int | None:
        """Where this stopped node's history left the upstream's (None: unknown)."""
        if end is None:
            return None
        try:
            mine = divergence.local_history(str(self.dir.pgdata), end.timeline)
            up_tli, theirs = divergence.upstream_history(self._upstream_dsn(upstream))
        except (EngineError, IndexError, ValueError) as exc:
            log.info("fork point unknown: %s", exc)
            return None
        return None if mine is None else rejoinplan.fork_point(end.timeline, mine, up_tli, theirs)

    def _start_as_standby_if_not_diverged(self, upstream: Upstream) -> bool:
        """A stopped primary whose WAL all lies on the upstream's history starts
        directly as its standby: no crash recovery as a primary (that would write
        an end-of-recovery checkpoint and diverge), no rewind, no second start.
        False (nothing started, or the server started but does not stream): the
        caller rewinds. Never starts the node as a primary."""
        t0 = time.monotonic()
        if not divergence.can_follow_without_rewind(self.binaries, self.user, str(self.dir.pgdata),
                                                    self._upstream_dsn(upstream)):
            return False
        t1 = time.monotonic()
        self.dir.set_standby_signal(True)
        self._save(upstream_name="", upstream_address="")
        try:
            self._follow_locked(upstream)   # writes conf; slot; no reload (stopped)
        except NeedsReclone:
            return False
        self.dir.prepare()
        self._write_confs()
        self._reset_reclone_scan()
        self._start_postmaster(primary=False)
        t2 = time.monotonic()
        if not self._streaming_from(upstream, min(10.0, self.stream_timeout_s)):
            log_event(log, "rejoin.not_streaming", member=self.name, upstream=upstream, level=logging.WARNING)
            return False
        log_event(log, "rejoin", member=self.name, upstream=upstream, method="not_diverged",
                  check_ms=round((t1 - t0) * 1000), start_ms=round((t2 - t1) * 1000),
                  stream_ms=round((time.monotonic() - t2) * 1000))
        return True

    def _reclone(self, upstream: Upstream, allow: bool, why: str, planned: bool = False) -> RejoinMethod:
        if not allow:
            raise NeedsReclone(f"{self.name}: cannot rejoin {upstream} from WAL ({why}); re-clone not allowed")
        log_event(log, "rejoin.reclone", member=self.name, upstream=upstream, reason=why,
                  level=logging.INFO if planned else logging.WARNING)
        # Only wipe once the upstream is known to answer (this also frees a lost slot).
        replication.ensure_slot(self._upstream_dsn(upstream), self.name, recreate_lost=True)
        self._save(incomplete=True)
        self._stop_postmaster()
        self.dir.wipe_pgdata()
        self.clone(upstream)
        self._start_postmaster(primary=False)
        self._reclone_requested = ""
        return RejoinMethod.RECLONED

    # -- fencing ---------------------------------------------------------------

    def fence(self, reason: str) -> None:
        """Stop new writes now (see the engine module docstring for the methods).

        On a primary: ``read_only`` (reload, then terminate client backends) or
        ``stop`` (fast shutdown). On a standby (read-only by role) the fence is
        only recorded and configured, so it stays read-only if promoted; its
        readers are left alone. Does not take the operation lock, so a long
        rejoin cannot delay it. A fence by the lease fencer keeps its reason
        (``fencer.REASON``) until ``unfence``, so status tells it happened."""
        method = self.config.fence_method
        try:
            with self._conf_lock:
                if self._state.fence_reason != fencer.REASON:
                    self._save(fence_reason=f"{method}: {reason}")
        except OSError as exc:
            # No room to record it (disk full), so no read-only setting can be
            # written either: a primary fails closed (immediate stop); a standby
            # refuses writes by its role anyway.
            log_event(log, "fence", member=self.name, method="stop", reason=reason, unrecorded=exc,
                      level=logging.WARNING)
            if self.dir.is_standby():
                return
            self._stopped_by_fence = True
            self._stop_postmaster(immediate=True)
            return
        log_event(log, "fence", member=self.name, method=method, reason=reason, level=logging.WARNING)
        if not self._running():
            return
        if self.dir.is_standby():
            # A standby refuses writes by its role: keep its server and readers;
            # the read-only setting still applies if it is promoted while fenced.
            self._apply_dynamic()
            return
        if method == "stop":
            self._stopped_by_fence = True
            self._stop_postmaster()
            return
        if self._started_read_only:
            # Started fenced and not unfenced since: every session is read-only
            # already (and the server may still be in crash recovery).
            return
        self._apply_dynamic()
        # New sessions must see read-only before we kill the old ones.
        wait_for(self._new_sessions_read_only, 5.0, 0.01)
        self._session.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() AND application_name <> %s", (sql.APP_NAME,))
        self._tell_fencer_fenced(True)      # in effect: a passing deadline needs no stop now

    def _new_sessions_read_only(self) -> bool:
        try:
            return self._admin("SELECT current_setting('default_transaction_read_only')", timeout_s=2)[0][0] == "on"
        except EngineError:
            return False

    def unfence(self) -> None:
        """Accept writes again; restarts a server that ``fence_method: stop`` or
        the lease fencer stopped (the fencer is told first, then the reload)."""
        with self._op:
            f = self._fencer
            if f is not None and f.fired():
                self._stop_postmaster()     # records the fencer's stop (unfence then restarts)
            self._save(fence_reason="")
            self._started_read_only = False
            if self._running():
                self._tell_fencer_fenced(False)
                self._apply_dynamic()
            elif self._stopped_by_fence and self.is_initialized():
                self.start()
            log_event(log, "unfence", member=self.name)

    def set_lease_deadline(self, deadline: float | None) -> None:
        """Arm/extend (``None``: no limit) the fencer process, which stops an
        unfenced primary's postmaster when ``deadline`` (monotonic) passes."""
        with self._fencer_lock:
            self._lease_deadline = deadline
            if self._fencer is not None:
                self._fencer.arm(deadline)

    def set_sync_standbys(self, spec: SyncSpec) -> None:
        """``synchronous_standby_names`` = ``FIRST n ("a", "b")`` / ``ANY n (...)``; reload.
        On a primary, then release the commits already waiting (``_release_waiters``)."""
        with self._op:
            self._save(sync_standbys=conf.render_sync(spec))
            self._apply_dynamic()
            if spec.enabled and not self._state.upstream_address and self._running():
                self._release_waiters(spec.names)

    def _release_waiters(self, names: tuple[str, ...], timeout_s: float = 0.5) -> None:
        """PostgreSQL releases a commit waiting for synchronous replication only
        when a standby's reply arrives after its walsender took up the new set,
        and a standby that already flushed everything replies only every
        ``wal_receiver_status_interval`` (1 s): a new primary's first commits
        (waiting while its set was the placeholder) would hang that long. So
        once a named standby's walsender counts it as synchronous, commit an
        empty transaction at ``synchronous_commit = local`` (acknowledged to no
        client): its WAL reaches the standby, whose reply releases them at once.
        Best effort: without such a standby (no wait then: the placeholder set
        of a promotion), or on any error, they wait as before."""
        deadline = time.monotonic() + timeout_s
        try:
            while (ready := replication.sync_release(self._session.standbys(), names)) is replication.SyncRelease.WAIT \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            if ready is replication.SyncRelease.NOW:
                self._session.query(sql.NUDGE_STANDBYS)
        except EngineError as exc:
            log_event(log, "sync.nudge_failed", level=logging.DEBUG, member=self.name, error=exc)

    def ensure_slots(self, names: list[str] | tuple[str, ...], drop_others: bool = False) -> tuple[SlotInfo, ...]:
        """Create a physical slot for each member name (not this one) if absent;
        with ``drop_others``, drop inactive physical slots of other names.
        Returns the slots after the change. Needs a running server."""
        with self._op:
            if not self._running():
                raise EngineError(f"{self.name}: cannot manage slots, PostgreSQL is not running")
            wanted = {conf.slot_name(n) for n in names} - {conf.slot_name(self.name)}
            existing = {s.name: s for s in self._session.slots()}
            for slot in sorted(wanted - set(existing)):
                self._session.query("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
                log_event(log, "slot.create", slot=slot)
            if drop_others:
                for slot, info in existing.items():
                    if slot not in wanted and not info.active:
                        self._session.query("SELECT pg_drop_replication_slot(%s)", (slot,))
                        log_event(log, "slot.drop", slot=slot)
            return self._session.slots()


def _discarded(end: divergence.WalEnd | None, fork: int | None, rewound: bool, upstream: Upstream,
               term: int) -> Discarded:
    """What pg_rewind dropped: from where it says the servers diverged to the
    end of the stopped node's WAL (pg_waldump); -1 bytes when either is unknown."""
    tli, last = (end.timeline, end.end_lsn) if end is not None else (0, 0)
    if not rewound:
        size, fork = 0, last
    elif end is None or fork is None:
        size = -1
    else:
        size = max(0, last - fork)
    log_event(log, "rewind.discarded", upstream=upstream, fork=fork, end=last, bytes=size)
    return Discarded(tli, fork or 0, last, size, -1, -1, str(upstream), term, time.time())
