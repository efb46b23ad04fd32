"""Process supervision for a local cluster: start detached, identify, stop.

The one rule: we only ever signal a PID after checking that it is still the
process we started (same command line and same kernel start time, both read
from ``/proc``), so a recycled PID is never killed by mistake.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class ProcHandle:
    """Identity of a started process, as recorded in ``cluster.json``."""
    pid: int
    cmdline: tuple[str, ...]
    start_ticks: int

    def to_json(self) -> dict:
        return {"pid": self.pid, "cmdline": list(self.cmdline), "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: dict) -> ProcHandle:
        return cls(int(data["pid"]), tuple(data["cmdline"]), int(data["start_ticks"]))


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of ``pid``, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    return rest[0], int(rest[19])


def _read_cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def handle_of(pid: int) -> ProcHandle | None:
    """The identity of the running process ``pid`` as /proc shows it now
    (None if it is gone or a zombie); for a process to record itself."""
    stat = _read_stat(pid)
    cmdline = _read_cmdline(pid)
    if stat is None or stat[0] in ("Z", "X") or cmdline is None:
        return None
    return ProcHandle(pid, cmdline, stat[1])


def spawn(argv: tuple[str, ...] | list[str], log_path: str, env: dict | None = None,
          cwd: str | None = None) -> tuple[subprocess.Popen, ProcHandle]:
    """Start ``argv`` detached (own session), stdout+stderr appended to ``log_path``.

    Returns the Popen (so a long-lived caller can reap it) and the handle to
    record. Raises OSError if the program cannot be started.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=cwd, close_fds=True)
    # The start time is fixed at fork and tells a recycled PID apart.
    stat = _read_stat(proc.pid)
    _await_cmdline(proc.pid, tuple(argv))
    return proc, ProcHandle(proc.pid, tuple(argv), stat[1] if stat else 0)


def _await_cmdline(pid: int, argv: tuple[str, ...], timeout_s: float = 2.0) -> None:
    """Wait until the kernel shows ``argv`` as the new program's command line.

    Popen returns once exec closed the error pipe, which is a moment before
    the kernel sets up the new argv: reading /proc/<pid>/cmdline in that
    window gives "" and would make ``is_ours`` say no."""
    deadline = time.monotonic() + timeout_s
    while _read_cmdline(pid) != argv and time.monotonic() < deadline:
        stat = _read_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return
        time.sleep(0.002)


def is_ours(handle: ProcHandle) -> bool:
    """True if ``handle.pid`` is alive (not a zombie) and still the process we started."""
    stat = _read_stat(handle.pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    if handle.start_ticks and stat[1] != handle.start_ticks:
        return False
    cmdline = _read_cmdline(handle.pid)
    return cmdline == handle.cmdline


def is_stopped(handle: ProcHandle) -> bool:
    """True if the process is ours and stopped (SIGSTOP)."""
    stat = _read_stat(handle.pid)
    return stat is not None and stat[0] in ("T", "t") and is_ours(handle)


def send(handle: ProcHandle, sig: int) -> bool:
    """Send ``sig`` to the process if it is still ours; return whether it was sent."""
    if not is_ours(handle):
        return False
    try:
        os.kill(handle.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    """Reap ``pid`` if it is our child (no-op otherwise)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(handle: ProcHandle, timeout_s: float, sleep: Sleep = time.sleep) -> bool:
    """Poll until the process is gone (or a zombie); True if it went within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(handle.pid)
        if not is_ours(handle):
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(0.05)


def stop(handle: ProcHandle, timeout_s: float = 10.0, sleep: Sleep = time.sleep) -> str:
    """SIGTERM, then SIGKILL after ``timeout_s``. Returns what happened:
    ``"gone"`` (was not running / not ours), ``"terminated"`` or ``"killed"``."""
    if not is_ours(handle):
        _reap(handle.pid)
        return "gone"
    if is_stopped(handle):
        send(handle, signal.SIGCONT)   # a SIGSTOPped process cannot act on SIGTERM
    send(handle, signal.SIGTERM)
    if wait_gone(handle, timeout_s, sleep):
        return "terminated"
    send(handle, signal.SIGKILL)
    wait_gone(handle, 5.0, sleep)
    return "killed"
