"""Engine side of the lease fencer (``fencer.py``): spawn, feed, retire.

One ``FencerProcess`` per running postmaster. It is forked by the same
long-lived spawner thread as the postmaster (so its parent-death signal,
SIGKILL, fires only when the agent process dies); if it dies on its own, the
engine starts another at once (``PostgresEngine._respawn_fencer``). It
gets a pidfd of the postmaster (race-free: the postmaster is our unreaped
child when it is opened), and is fed over a pipe. Writes to the pipe never block for long
(a few bytes; the fencer drains it continuously).
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import subprocess
import sys
import threading

from walrus_ha.common.errors import EngineError
from walrus_ha.common.log import log_event
from walrus_ha.node.engine.postgres import fencer
from walrus_ha.node.engine.postgres.process import Postmaster, _get_spawner

log = logging.getLogger(__name__)

FENCER_SCRIPT = fencer.__file__
EXIT_FIRED = fencer.EXIT_FIRED
REASON = fencer.REASON


class FencerProcess:
    """The fencer guarding one postmaster (see ``fencer`` for the protocol)."""

    def __init__(self, pm: Postmaster, pgdata: pathlib.Path, record: pathlib.Path,
                 deadline: float | None, fenced: bool, respawns: int = 0):
        self.pm = pm
        self.respawns = respawns      # how many fencers of this postmaster died before this one
        self.record = record
        self._lock = threading.Lock()
        try:
            pidfd = os.pidfd_open(pm.pid)
        except OSError as exc:
            raise EngineError(f"cannot watch postmaster {pm.pid} for the lease fencer "
                              f"(pidfd_open needs Linux 5.3+): {exc}") from None
        try:
            if not pm.running():      # exited (and perhaps reaped) meanwhile: the pidfd may be another's
                raise EngineError(f"postmaster {pm.pid} exited before its fencer started: {pm.log_tail()}")
            argv = [sys.executable, "-I", "-S", FENCER_SCRIPT, "--pidfd", str(pidfd), "--pid", str(pm.pid),
                    "--pgdata", str(pgdata), "--record", str(record), "--parent", str(os.getpid())]
            if deadline is not None:
                argv += ["--deadline", repr(deadline)]
            if fenced:
                argv.append("--fenced")
            # No preexec_fn (see fencer.die_with_parent); forked by the spawner
            # thread so the parent-death signal follows the process, not a thread.
            self._proc: subprocess.Popen = _get_spawner().call(lambda: subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, pass_fds=(pidfd,),
                process_group=0, cwd="/"))
        except OSError as exc:
            raise EngineError(f"cannot start the lease fencer: {exc}") from None
        finally:
            os.close(pidfd)
        log_event(log, "fencer.start", pid=self._proc.pid, postmaster=pm.pid,
                  deadline="none" if deadline is None else f"{deadline:.3f}", fenced=fenced)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc.stdin is None or self._proc.stdin.closed:
                return
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:   # gone: fired, or the postmaster exited
                log_event(log, "fencer.unreachable", pid=self._proc.pid, code=self._proc.poll(), error=exc,
                          level=logging.WARNING)

    def arm(self, deadline: float | None) -> None:
        """Arm/extend at ``deadline`` (monotonic seconds); None disarms."""
        self._send("disarm" if deadline is None else f"arm {deadline!r}")

    def set_fenced(self, fenced: bool) -> None:
        """Tell the fencer whether the engine's own (read-only) fence is in effect."""
        self._send("fenced" if fenced else "unfenced")

    def alive(self) -> bool:
        return self._proc.poll() is None

    def fired(self) -> bool:
        """True once the fencer has decided to stop the postmaster (its record
        is written just before the signal), or has stopped it."""
        return self._proc.poll() == EXIT_FIRED or self.record.exists()

    def wait(self) -> int:
        return self._proc.wait()

    def close(self, timeout: float = 5.0) -> bool:
        """Ask it to quit (SIGKILL after ``timeout``, or after its own SIGKILL
        escalation once it fired); returns whether it had fired."""
        if self._proc.poll() is None and not self.record.exists():
            self._send("quit")
        with self._lock:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(fencer.KILL_AFTER_S + 2 if self.record.exists() else timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        return self.fired()

    def take_record(self) -> dict:
        """The fencer's record (empty if none), removed once read."""
        return take_record(self.record)


def take_record(path: pathlib.Path) -> dict:
    """Read and remove a fencer record file; {} when absent or unreadable."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    try:
        path.unlink()
    except OSError:
        pass
    return rec if isinstance(rec, dict) else {}
