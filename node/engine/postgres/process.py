"""Run PostgreSQL programs as the ``postgres`` OS user; own the postmaster.

The one rule: a postmaster started here dies with the agent. It is started
directly (``postgres -D ...``, never pg_ctl's daemonizing) as a child of the
agent with a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGQUIT)``,
i.e. PostgreSQL's immediate shutdown). Linux sends that signal when the
*thread* that forked the child exits, so every postmaster is forked by one
long-lived spawner thread that lives as long as the agent process.

When the agent runs as root, every PostgreSQL program runs as ``os_user``
(PostgreSQL refuses root); otherwise they run as the agent's own user.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pathlib
import pwd
import queue
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class OsUser:
    """Who PostgreSQL programs run as. ``switch`` is False when not root."""
    name: str
    uid: int
    gid: int
    home: str
    switch: bool

    @classmethod
    def resolve(cls, os_user: str) -> OsUser:
        """``os_user`` when the agent is root, else the current user.

        Raises EngineError when running as root and ``os_user`` does not exist.
        """
        if os.geteuid() != 0:
            pw = pwd.getpwuid(os.geteuid())
            return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, False)
        try:
            pw = pwd.getpwnam(os_user)
        except KeyError:
            raise EngineError(f"the agent runs as root and PostgreSQL refuses root, but OS user "
                              f"{os_user!r} (postgres.os_user) does not exist") from None
        if pw.pw_uid == 0:
            raise EngineError(f"postgres.os_user {os_user!r} is root; PostgreSQL refuses to run as root")
        return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir, True)

    def popen_kwargs(self) -> dict:
        """Keyword arguments for subprocess that drop to this user."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "HOME": self.home, "USER": self.name, "PGCONNECT_TIMEOUT": "5"}
        kw: dict = {"env": env, "cwd": "/"}
        if self.switch:
            kw.update(user=self.uid, group=self.gid, extra_groups=[])
        return kw


def prepare_dir(path: pathlib.Path, user: OsUser, mode: int = 0o700) -> None:
    """Create ``path`` if needed, owned by ``user`` with ``mode``, and check that
    ``user`` can traverse every ancestor. Raises EngineError naming the first
    ancestor it cannot reach (walrus never loosens a parent's mode for you)."""
    path.mkdir(parents=True, exist_ok=True)
    if user.switch:
        os.chown(path, user.uid, user.gid)
    os.chmod(path, mode)
    check_traversable(path.parent, user)


def check_traversable(path: pathlib.Path, user: OsUser) -> None:
    """Raise EngineError unless ``user`` has search (x) permission on ``path``
    and each of its ancestors."""
    for d in [path, *path.parents]:
        st = d.stat()
        if st.st_uid == user.uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            raise EngineError(f"OS user {user.name!r} cannot traverse {d} (mode {stat.filemode(st.st_mode)}, "
                              f"owner uid {st.st_uid}); put the data dir under a path it can reach, "
                              "or grant it search permission (e.g. chmod o+x)")


def run(argv: list[str], user: OsUser, *, timeout: float, what: str) -> str:
    """Run one PostgreSQL program to completion as ``user``; return its output.

    Raises EngineError with the program's last output lines on failure/timeout.
    """
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **user.popen_kwargs())
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what}: {pathlib.Path(argv[0]).name} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise EngineError(f"{what}: cannot run {argv[0]}: {exc}") from None
    out = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        tail = " | ".join(out.strip().splitlines()[-5:])
        raise EngineError(f"{what}: {pathlib.Path(argv[0]).name} exited {proc.returncode}: {tail}")
    return out


class _Spawner:
    """One daemon thread, alive for the whole process, that forks postmasters,
    so their parent-death signal fires only when the agent process dies.
    It does not make forking safe from gRPC's threads (they share the process);
    turning gRPC's fork handlers off does (``walrus/__init__.py``)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], object], Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="walrus-pg-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

    def call(self, fn: Callable[[], object]) -> object:
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _get_spawner() -> _Spawner:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        return _spawner


def _child_setup(parent_pid: int, sig: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs in the child after the uid/gid switch (which would clear it).
        _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:   # the parent died before prctl took effect
            os._exit(1)
        os.setpgrp()                     # terminal signals to the agent do not hit postgres
    return setup


class Postmaster:
    """A ``postgres -D data_dir`` child process of this agent.

    ``start`` returns once the process runs (not once it accepts connections);
    ``stop`` shuts down (fast, then immediate, then SIGKILL) and is idempotent.
    """

    def __init__(self, postgres_bin: str, data_dir: pathlib.Path, user: OsUser, log_path: pathlib.Path):
        self.argv = [postgres_bin, "-D", str(data_dir)]
        self.data_dir = data_dir
        self.user = user
        self.log_path = log_path
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> None:
        """Fork the postmaster from the spawner thread. Raises EngineError."""
        if self.running():
            return
        log_file = open(self.log_path, "ab")
        try:
            setup = _child_setup(os.getpid(), signal.SIGQUIT)
            kw = self.user.popen_kwargs()
            self._proc = _get_spawner().call(lambda: subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=setup, **kw))
        except OSError as exc:
            raise EngineError(f"cannot start {self.argv[0]}: {exc}") from None
        finally:
            log_file.close()
        log_event(log, "postmaster.start", pid=self._proc.pid, data_dir=self.data_dir)

    def reload(self, timeout: float = 10.0) -> None:
        """SIGHUP: re-read the configuration files (what pg_reload_conf() does).

        A postmaster that was just forked has no SIGHUP handler yet and would
        die of it; it installs one before it writes ``postmaster.pid``, and it
        may already have read the old files, so wait (up to ``timeout``) for
        that file to name it, then signal."""
        if not self.running():
            return
        wait_for(lambda: not self.running() or self._pid_file_written(), timeout, 0.005)
        if self.running() and self._pid_file_written():
            try:
                self._proc.send_signal(signal.SIGHUP)
            except ProcessLookupError:
                pass

    def _pid_file_written(self) -> bool:
        try:
            with open(self.data_dir / "postmaster.pid") as f:
                return f.readline().strip() == str(self._proc.pid)
        except (OSError, AttributeError):
            return False

    def stop(self, timeout: float = 30.0, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT) after ``timeout``; then SIGKILL.
        ``immediate``: begin with SIGQUIT (no shutdown checkpoint; crash recovery at the next start)."""
        if self._proc is None:
            return
        steps = ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0))
        for sig, wait in steps[1:] if immediate else steps:
            if self._proc.poll() is not None:
                break
            try:
                self._proc.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                self._proc.wait(wait)
            except subprocess.TimeoutExpired:
                log_event(log, "postmaster.stop_escalate", pid=self._proc.pid, signal=sig.name,
                          level=logging.WARNING)
        log_event(log, "postmaster.stop", pid=self._proc.pid, code=self._proc.poll())
        self._proc = None

    def log_tail(self, lines: int = 8) -> str:
        """The last ``lines`` lines of the server log (for error messages)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``cond`` until it is true or ``timeout`` (monotonic) passes."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
