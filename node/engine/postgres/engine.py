"""``PostgresEngine``: the ``node.engine.base.Engine`` protocol over real PostgreSQL.

The one rule: the postmaster is a child of this process (see ``process``), so
whatever happens to the agent, no primary outlives it; and a node that may
have diverged only ever comes back as a standby (rewind or re-clone, never a
start as primary).

Fencing: PostgreSQL cannot check a lease deadline before each commit, and
a thread of the agent is frozen with the agent, so ``set_lease_deadline``
feeds the deadline to a separate fencer *process* (``fencer.py``, one per
postmaster, started with it), which kills the postmaster and its children
when the deadline passes unextended on an unfenced primary. The
engine then records ``fence_reason = fencer.REASON`` and restarts the server
fenced (read-only, after crash recovery), so the agent sees a fenced primary
as after any fence, and ``unfence`` (after a new deadline) just lifts it.
``fence`` with ``fence_method: read_only`` sets
``default_transaction_read_only = on`` (reload), waits until new sessions see
it, and terminates every client backend; a client that explicitly asks for
``SET default_transaction_read_only = off`` / ``BEGIN READ WRITE`` afterwards
is not stopped, which is why ``fence_method: stop`` (fast shutdown) exists.
The fence is remembered in ``walrus-state.json`` and survives restarts.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Mapping

from walrus_ha.common.config import parse_address
from walrus_ha.common.errors import EngineError, NeedsReclone, StaleTerm
from walrus_ha.common.log import log_event
from walrus_ha.node.config import NodeConfig, PostgresConfig
from walrus_ha.node.engine.base import EngineStatus, Role, Upstream
from walrus_ha.node.engine.postgres import auth, conf, replication, sql
from walrus_ha.node.engine.postgres import fencer as fencer_mod
from walrus_ha.node.engine.postgres import parameters as parameters_mod
from walrus_ha.node.engine.postgres.binaries import Binaries, find_binaries
from walrus_ha.node.engine.postgres.datadir import NodeDir
from walrus_ha.node.engine.postgres.diskspace import DiskSpace
from walrus_ha.node.engine.postgres.fencing import FencerProcess, take_record
from walrus_ha.node.engine.postgres.process import OsUser, Postmaster, run, wait_for
from walrus_ha.node.engine.postgres.transitions import TransitionsMixin

log = logging.getLogger(__name__)

# Server log lines that mean this standby cannot catch up from the upstream's
# WAL: the WAL is gone (slot lost), or this node's history diverged from the
# upstream's timeline. Either way it must be rejoined (rewind or re-clone).
FENCER_MAX_RESPAWNS = 5   # consecutive fencer deaths for one postmaster before fencing instead

# PostgreSQL's words for a WAL record that fails its checks. "invalid record
# length ... got 0" and "invalid magic number 0000" are the normal end of
# the log (zeros), not damage.
_WAL_DAMAGE = re.compile(r"(incorrect resource manager data checksum in record at \S+"
                         r"|incorrect hole size in record at \S+"
                         r"|invalid resource manager ID \d+ at \S+"
                         r"|invalid record length at \S+: wanted \d+, got [1-9]\d*"
                         r"|invalid magic number (?!0000)[0-9A-F]{4} in log segment \S+)")
_LOST_WAL_MARKERS = ("has already been removed", "exceeded the maximum reserved size",
                     "can no longer get changes from replication slot", "cannot read from replication slot",
                     "forked off current database system timeline", "is not a child of this server's history")


class PostgresEngine(TransitionsMixin):
    """A PostgreSQL 15+ member managed by the node agent (see module docstring)."""

    kind = "postgres"
    rejoins_stopped = True     # rejoin() takes a stopped node (never starting it as a primary)
    pending_restart: tuple[str, ...] = ()   # parameters changed since the postmaster started (apply_parameters)

    def __init__(self, name: str, data_dir: str, listen: str, config: PostgresConfig | None = None, *,
                 data_address: str = "", start_fenced: bool = False, start_timeout_s: float = 60.0,
                 op_timeout_s: float = 600.0, stream_timeout_s: float = 30.0):
        self.name = name
        self.config = config or PostgresConfig()
        self.listen_host, self.port = parse_address(listen)
        self.data_address = data_address or f"{self.listen_host}:{self.port}"
        self.start_fenced = start_fenced
        self.start_timeout_s = start_timeout_s
        self.op_timeout_s = op_timeout_s
        self.stream_timeout_s = stream_timeout_s
        self.user = OsUser.resolve(self.config.os_user)
        c = self.config      # None: loopback trust only; ConfigError names the key and file
        self._creds = auth.load_credentials(c.superuser, c.superuser_password_file, c.replication_user,
                                            c.replication_password_file)
        self._passfile_path = ""
        self.dir = NodeDir(data_dir, self.user)
        self._disk = DiskSpace(str(self.dir.root))    # a full disk: PostgreSQL alone tells nobody
        self._bins: Binaries | None = None
        self._pm: Postmaster | None = None
        self._state = self.dir.load_state()
        self._op = threading.RLock()
        self._conf_lock = threading.RLock()
        self._fencer: FencerProcess | None = None
        self._lease_deadline: float | None = None
        self._fencer_restarting = False     # _watch_fencer is restarting the server fenced
        self._fencer_lock = threading.Lock()
        self._stopped_by_fence = False
        self._started_read_only = False    # the running server started fenced, not unfenced since
        self._needs_reclone = False
        self._reclone_requested = ""    # an operator's reinit: the next rejoin re-clones
        self._reset_reclone_scan()      # the log from here on: what earlier runs logged is not ours
        self._wal_repairs: list[str] = []      # WAL damage the server's recovery logged (since we opened)
        self._standby_tli = 0
        host = "127.0.0.1" if self.listen_host in ("0.0.0.0", "*", "") else self.listen_host
        self._local_host = "127.0.0.1" if host == "::" else host
        self._session = sql.Session(self._dsn(statement_timeout_ms=2000, connect_timeout=2))
        self._adopt_fencer_record()

    @classmethod
    def from_node_config(cls, node_config: NodeConfig) -> PostgresEngine:
        """The engine for ``walrus node``: listens on ``data_listen``, advertises ``data_address``."""
        return cls(node_config.name, node_config.data_dir, node_config.data_listen, node_config.postgres,
                   data_address=node_config.data_address)

    # -- helpers ---------------------------------------------------------------

    def _dsn(self, *, statement_timeout_ms: int = 60000, connect_timeout: int = 3) -> str:
        return sql.dsn(self._local_host, self.port, self.config.superuser, self.config.database,
                       connect_timeout=connect_timeout, statement_timeout_ms=statement_timeout_ms)

    def _admin(self, query: str, params: tuple = (), timeout_s: float = 60.0) -> list[tuple]:
        return sql.execute_once(self._dsn(statement_timeout_ms=int(timeout_s * 1000)), query, params)

    def _upstream_dsn(self, upstream: Upstream) -> str:
        return replication.upstream_dsn(upstream, self.config.superuser, self.config.database,
                                        passfile=self._passfile())

    def _passfile(self) -> str:
        """The libpq password file for connections to other members (written
        once per run, so a changed secret is picked up on restart); "" without
        password files."""
        if self._creds is not None and not self._passfile_path:
            self._passfile_path = self.dir.write_passfile(auth.render_passfile(self._creds))
        return self._passfile_path

    @property
    def binaries(self) -> Binaries:
        """The PostgreSQL programs (found on first use; EngineError names what is missing)."""
        if self._bins is None:
            self._bins = find_binaries(self.config.bin_dir)
        return self._bins

    def _running(self) -> bool:
        return self._pm is not None and self._pm.running()

    def _save(self, **changes) -> None:
        with self._conf_lock:
            self._state = self._state.with_(**changes)
            self.dir.save_state(self._state)

    def _static(self) -> conf.StaticConf:
        return conf.StaticConf(listen_host=self.listen_host, port=self.port, socket_dir=self.dir.socket_dir(),
                               max_slot_wal_keep_size=self.config.max_slot_wal_keep_size,
                               parameters=dict(self.config.parameters))

    def _dynamic(self) -> conf.DynamicConf:
        s = self._state
        if s.upstream_address:
            up = Upstream(s.upstream_name, s.upstream_address)
            info = replication.primary_conninfo(up, self.config.replication_user, self.name, self._passfile())
            slot = conf.slot_name(self.name)
        else:
            info = slot = ""
        return conf.DynamicConf(primary_conninfo=info, primary_slot_name=slot,
                                synchronous_standby_names=s.sync_standbys, read_only=bool(s.fence_reason))

    def _write_confs(self) -> None:
        with self._conf_lock:
            rows = auth.hba_rows(self.config.replication_user) if self._creds else ()
            self.dir.write_static(self._static(), self.config.replication_user, tuple(self.config.hba), rows)
            self.dir.write_dynamic(self._dynamic())

    def apply_parameters(self, parameters: Mapping[str, str]) -> tuple[str, ...]:
        """New ``parameters`` (the node file's under the cluster config's) into
        ``postgresql.conf``; a running server reloads (``pg_reload_conf()``'s
        SIGHUP). Returns, and keeps in ``pending_restart`` until the next
        start, the settings only a restart applies. EngineError if the server
        cannot be asked."""
        with self._op:
            self.config = dataclasses.replace(self.config, parameters=dict(parameters))
            if not self.is_initialized():
                return ()
            with self._conf_lock:
                self.dir.write_static(self._static(), self.config.replication_user, tuple(self.config.hba))
            if not self._running():
                return ()
            self._pm.reload()
            self.pending_restart = parameters_mod.pending_from_rows(
                self._session.query(parameters_mod.PENDING_RESTART_SQL))
            return self.pending_restart

    def _apply_dynamic(self) -> None:
        """Rewrite walrus.dynamic.conf and reload (no restart) when running."""
        with self._conf_lock:
            self.dir.write_dynamic(self._dynamic())
        if self._running():
            self._pm.reload()   # SIGHUP, like pg_reload_conf(), but works before connections do

    def _check_term(self, term: int) -> None:
        if term < self._state.term:
            raise StaleTerm(f"{self.name}: term {term} is older than term {self._state.term} already seen")
        if term > self._state.term:
            self._save(term=term)

    def request_reclone(self, reason: str) -> None:
        """An operator's reinit: the next ``rejoin`` re-clones (see ``Engine``)."""
        self._reclone_requested = reason or "re-clone requested"
        log_event(log, "reclone_requested", member=self.name, reason=reason)

    def restart_pending(self) -> bool:
        """``pending_restart`` or any ``pg_settings.pending_restart`` (False
        while the server is down)."""
        if self.pending_restart:
            return True
        if not self._running():
            return False
        rows = self._admin("SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings")
        return bool(rows and rows[0][0])

    def _reset_reclone_scan(self) -> None:
        self._needs_reclone = False
        try:
            self._log_offset = self.dir.log_path.stat().st_size
        except OSError:
            self._log_offset = 0

    def _scan_log(self) -> bool:
        """Sticky: True once the server log said the WAL we need is gone upstream."""
        try:
            with open(self.dir.log_path, "rb") as f:
                f.seek(self._log_offset)
                chunk = f.read(1 << 20)
        except OSError:
            return self._needs_reclone
        cut = chunk.rfind(b"\n") + 1
        self._log_offset += cut
        text = chunk[:cut].decode(errors="replace")
        for m in _WAL_DAMAGE.finditer(text):
            self._wal_repairs.append(m.group(0))
            log_event(log, "wal_damaged", logging.ERROR, member=self.name, found=m.group(0),
                      action="PostgreSQL ends recovery there; the standby streams the rest again")
        if self._needs_reclone or not self.dir.is_standby():
            return self._needs_reclone
        if any(m in text for m in _LOST_WAL_MARKERS):
            self._needs_reclone = True
            log_event(log, "standby.needs_reclone", member=self.name, level=logging.WARNING)
        return self._needs_reclone

    # -- life cycle ------------------------------------------------------------

    def is_initialized(self) -> bool:
        """True when ``pgdata`` holds a PostgreSQL cluster."""
        return self.dir.is_initialized()

    def bootstrap(self) -> None:
        """initdb (as the OS user), walrus's config, and the replication role."""
        with self._op:
            self.dir.prepare_pgdata()
            self._save(incomplete=True)
            bins = self.binaries
            run([bins.path("initdb"), "-D", str(self.dir.pgdata), "-U", self.config.superuser, "-A", "trust",
                 "-E", "UTF8", "--locale=C", "--no-instructions"],
                self.user, timeout=self.op_timeout_s, what="bootstrap")
            self.dir.set_standby_signal(False)
            self._save(upstream_name="", upstream_address="")
            self._write_confs()
            self._start_postmaster(primary=True)
            try:
                self._create_roles()
            finally:
                self._stop_postmaster()
            self._save(incomplete=False)
            log_event(log, "bootstrap.done", member=self.name, pgdata=self.dir.pgdata)

    def _create_roles(self) -> None:
        """The replication role; with password files, both roles' SCRAM
        verifiers (auth.py: the clear passwords are never sent)."""
        role, creds = self.config.replication_user, self._creds
        if creds is None:
            self._admin(f'CREATE ROLE "{role}" WITH REPLICATION LOGIN')
            return
        self._admin(auth.set_password_sql(role, auth.scram_verifier(creds.replication_password),
                                          create_replication_role=True))
        self._admin(auth.set_password_sql(creds.superuser, auth.scram_verifier(creds.superuser_password)))

    def clone(self, upstream: Upstream) -> None:
        """pg_basebackup of ``upstream`` into an empty pgdata; the node is then a
        standby of it, streaming through its own slot (created if absent)."""
        with self._op:
            self.dir.prepare_pgdata()
            self._save(incomplete=True)
            try:
                replication.ensure_slot(self._upstream_dsn(upstream), self.name, recreate_lost=True)
            except EngineError as exc:
                raise EngineError(f"clone from {upstream}: cannot prepare slot: {exc}") from None
            replication.base_backup(self.binaries, self.user, str(self.dir.pgdata), upstream,
                                    self.config.replication_user, self.name, self.op_timeout_s, self._passfile())
            self.dir.set_standby_signal(True)
            self._save(upstream_name=upstream.name, upstream_address=upstream.address, incomplete=False)
            self._standby_tli = 0
            self._write_confs()
            self._reset_reclone_scan()

    def start(self) -> None:
        """Start in the recorded role (PostgreSQL does crash recovery itself).
        A primary starts fenced (read-only) when ``start_fenced`` is set or it was
        fenced before. Raises EngineError when it cannot start."""
        with self._op:
            if self._running():
                return
            if self._state.incomplete:
                raise NeedsReclone(f"{self.name}: an unfinished bootstrap, clone or rewind left "
                                   f"{self.dir.pgdata} unusable; rejoin (re-clone) it")
            if not self.is_initialized():
                raise EngineError(f"{self.dir.pgdata} holds no database; bootstrap or clone first")
            self.dir.prepare()
            standby = self.dir.is_standby()
            if not standby and self.start_fenced and not self._state.fence_reason:
                self._save(fence_reason="read_only: started fenced")
            self._write_confs()
            self._reset_reclone_scan()
            self._start_postmaster(primary=not standby)

    def _start_postmaster(self, primary: bool) -> None:
        pm = Postmaster(self.binaries.path("postgres"), self.dir.pgdata, self.user, self.dir.log_path)
        self.pending_restart = ()      # it reads every setting afresh
        self._started_read_only = bool(self._state.fence_reason)   # confs were written with it
        pm.start()
        self._pm = pm
        self._stopped_by_fence = False
        try:
            self._start_fencer(pm)
        except EngineError:
            self._stop_postmaster()     # fail closed: no postmaster without its fencer
            raise

        def accepting() -> bool:
            if not pm.running():
                return True
            try:
                self._session.query("SELECT 1")
                return True
            except EngineError:
                return False

        ok = wait_for(accepting, self.start_timeout_s if primary else min(self.start_timeout_s, 30.0), 0.05)
        if not pm.running():
            self._pm = None
            raise EngineError(f"PostgreSQL exited during start (code {pm.exit_code()}): {pm.log_tail()}")
        if not ok and primary:
            self._stop_postmaster()
            raise EngineError(f"PostgreSQL did not accept connections within {self.start_timeout_s:g}s: "
                              f"{pm.log_tail()}")
        if not ok:
            log_event(log, "start.not_accepting_yet", member=self.name, level=logging.WARNING)

    def _stop_postmaster(self, immediate: bool = False) -> None:
        """Stop the server: fast shutdown, or immediate when asked or when the data
        filesystem is full (the shutdown checkpoint may need space it cannot get)."""
        self._session.close()
        self._retire_fencer()
        pm, self._pm = self._pm, None
        if pm is not None:
            pm.stop(immediate=immediate or self.disk_full())

    def disk_full(self) -> bool:
        """Whether the data directory's filesystem has no room for writes now (statvfs)."""
        return bool(self._disk.check()[0])

    def stop(self) -> None:
        """Fast shutdown (and the fencer with it); idempotent."""
        with self._op:
            self._stop_postmaster()

    # -- the lease fencer (see fencer.py) --------------------------------------

    @property
    def _fencer_record(self):
        return self.dir.root / "walrus-fencer.json"

    def _start_fencer(self, pm: Postmaster, dead: FencerProcess | None = None) -> None:
        """A fencer for ``pm``, armed with the current deadline if still ahead
        (a passed deadline was already acted on by the previous fencer). With
        ``dead``: replace that fencer, which died without firing, if it is still
        the current one; told "not fenced" (the safe side) whatever the state."""
        with self._fencer_lock:
            if dead is not None and (self._fencer is not dead or self._pm is not pm or not pm.running()):
                return
            d = self._lease_deadline
            if d is not None and d <= time.monotonic() and dead is None:
                d = None
            fenced = bool(self._state.fence_reason) and dead is None
            f = FencerProcess(pm, self.dir.pgdata, self._fencer_record, d, fenced,
                              respawns=0 if dead is None else dead.respawns + 1)
            self._fencer = f
        threading.Thread(target=self._watch_fencer, args=(f,), name="walrus-pg-fencer-watch", daemon=True).start()

    def _tell_fencer_fenced(self, fenced: bool) -> None:
        with self._fencer_lock:
            if self._fencer is not None:
                self._fencer.set_fenced(fenced)

    def _retire_fencer(self) -> None:
        with self._fencer_lock:
            f, self._fencer = self._fencer, None
        if f is not None and f.close():
            self._absorb_fire(f.take_record())

    def _absorb_fire(self, rec: dict) -> None:
        self._stopped_by_fence = True
        try:
            self._save(fence_reason=fencer_mod.REASON)
        except OSError as exc:      # a full disk: the reason is kept in memory (the server is stopped)
            log_event(log, "fence.unrecorded", member=self.name, error=exc, level=logging.ERROR)
        log_event(log, "fence", member=self.name, method="stop", reason="lease deadline passed (fencer)",
                  late_ms=rec.get("late_ms", "?"), level=logging.WARNING)

    def _adopt_fencer_record(self) -> None:
        """A record left by a fencer whose agent died before reading it."""
        rec = take_record(self._fencer_record)
        if rec:
            self._state = self._state.with_(fence_reason=fencer_mod.REASON)
            self.dir.save_state(self._state)

    def _watch_fencer(self, f: FencerProcess) -> None:
        """When ``f`` fires: record the fence and restart the server fenced
        (read-only), so the agent sees a fenced primary it can reconfirm."""
        code = f.wait()
        if not f.fired():
            if code != 0:
                self._respawn_fencer(f, code)
            return
        log_event(log, "fencer.fired", member=self.name, pid=f.pid, level=logging.WARNING)
        with self._op:
            if self._fencer is not f:       # an operation already retired it
                return
            self._fencer_restarting = True
            try:
                self._stop_postmaster()
                if self.is_initialized() and not self._state.incomplete:
                    self.start()
            except (EngineError, OSError) as exc:     # OSError: no room for its files (disk full)
                log_event(log, "fencer.restart_failed", member=self.name, error=exc, level=logging.ERROR)
            finally:
                self._fencer_restarting = False

    def _respawn_fencer(self, f: FencerProcess, code: int) -> None:
        """A fencer died without firing (crash, kill): start another at once;
        after repeated failures fence (read-only) rather than run unguarded."""
        log_event(log, "fencer.died", member=self.name, pid=f.pid, code=code, respawns=f.respawns,
                  level=logging.ERROR)
        try:
            if f.respawns >= FENCER_MAX_RESPAWNS:
                raise EngineError(f"the lease fencer died {f.respawns + 1} times in a row")
            self._start_fencer(f.pm, dead=f)
        except EngineError as exc:
            log_event(log, "fencer.unavailable", member=self.name, error=exc, level=logging.ERROR)
            if self._fencer is f:
                self.fence(f"no lease fencer: {exc}")

    @property
    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster (for tests and diagnostics)."""
        return self._pm.pid if self._running() else None

    # -- status ----------------------------------------------------------------

    def status(self) -> EngineStatus:
        """Role, timeline, term and LSNs; one kept-open connection, 2 s statement timeout."""
        s = self._state
        common = dict(term=s.term, fenced=bool(s.fence_reason), fence_reason=s.fence_reason,
                      engine=self.kind, sync_standbys=s.sync_standbys,
                      needs_reclone=self._scan_log() or s.incomplete or bool(self._reclone_requested),
                      wal_repairs=len(self._wal_repairs),
                      wal_repair=self._wal_repairs[-1] if self._wal_repairs else "")
        upstream = f"{s.upstream_name}@{s.upstream_address}" if s.upstream_address else ""
        f = self._fencer
        if (f is not None and f.fired()) or self._fencer_restarting:   # until it accepts again, fenced
            common.update(fenced=True, fence_reason=fencer_mod.REASON)
            return EngineStatus(Role.PRIMARY, upstream=upstream, **common,
                                detail="the lease fencer stopped PostgreSQL; restarting it fenced")
        if not self._running():
            return EngineStatus(Role.STOPPED, upstream=upstream, detail="postmaster not running", **common)
        try:
            if self._session.in_recovery():
                r = self._session.standby()
                # Control data lags the replayed timeline between restartpoints;
                # never report a timeline lower than one this standby already showed.
                self._standby_tli = max(self._standby_tli, r.timeline)
                return EngineStatus(Role.STANDBY, timeline=self._standby_tli, write_lsn=r.receive_lsn,
                                    flush_lsn=max(r.receive_lsn, r.replay_lsn), replay_lsn=r.replay_lsn,
                                    receive_lsn=r.receive_lsn, upstream=upstream, streaming=r.streaming,
                                    slots=self._session.slots(), detail=r.wal_status, **common)
            p = self._session.primary()
            write_error, since = self._disk.check()
            return EngineStatus(Role.PRIMARY, timeline=p.timeline, write_lsn=p.write_lsn, flush_lsn=p.flush_lsn,
                                replay_lsn=p.flush_lsn, standbys=self._session.standbys(),
                                slots=self._session.slots(), write_error=write_error,
                                write_error_since=since, **common)
        except EngineError as exc:
            # A standby still recovering to consistency is a standby; a primary
            # that does not answer is not one anybody can write to.
            role = Role.STANDBY if self.dir.is_standby() else Role.STOPPED
            return EngineStatus(role, upstream=upstream, detail=f"not accepting connections: {exc}", **common)
