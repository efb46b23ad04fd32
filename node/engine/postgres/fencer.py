"""Lease fencer: a separate process that stops the postmaster at the lease deadline.

Why a process: PostgreSQL cannot check the lease deadline before each commit
acknowledgement, and the postmaster is its own process. A watchdog *thread*
in the agent is frozen with the agent (SIGSTOP, a long GC or swap stall, a
debugger), while the postmaster keeps acknowledging writes past the
deadline. So each postmaster gets a sibling fencer process (a child of the
agent, started right after the postmaster) that enforces the deadline on its
own: when the deadline the agent fed it passes without being extended, it
stops the server at once: SIGSTOP the postmaster, SIGKILL every child of it
(each backend dies wherever it is, without having to be scheduled or to get
a signal forwarded by the postmaster), then SIGKILL the postmaster. No commit
is acknowledged after that; an acknowledgement already being sent may
still leave (see "A whole tree frozen" below). The price is crash recovery
on the next start, which is fine: the engine restarts the node fenced
(read-only) and it rejoins or is reconfirmed; pg_rewind (PostgreSQL 13+)
runs crash recovery itself on an uncleanly stopped target.

A whole tree frozen (``docker pause``, a cgroup freezer, a paused VM: agent,
postmaster, backends and fencer stopped together past the deadline): on the
thaw all of them wake at once and the backends find the writes clients sent
meanwhile. Three things make the fencer act first: it waits on an absolute
CLOCK_MONOTONIC timer (timerfd; a frozen select() would resume with the
time it had left when it froze, i.e. fire a whole freeze late), it runs
SCHED_FIFO (``run_first``; the kernel runs it before every normal process
that wakes with it), and it kills the backends itself. What remains is the
time from the thaw to those SIGKILLs (well under a millisecond of the
fencer's CPU time); a backend on another CPU that completes a commit
within it can still acknowledge. Synchronous replication closes that: such
a commit waits for a standby that now follows the new primary.

Not stopped with the agent: drills and operators freeze the agent's PID
(``walrus drill freeze-primary`` SIGSTOPs exactly that PID, see
``tools.drill.scenarios`` and ``tools.localcluster``), not its process
group or children, so a separate process keeps running. (A freeze of the
whole host freezes PostgreSQL too, which then acknowledges nothing.) The
fencer is in its own process group, so terminal signals to the agent do not
reach it. It dies with the agent (parent-death signal SIGKILL, which it sets
itself: ``--parent``); the
postmaster does too (its own parent-death signal), so no writable primary
outlives the agent either way.

Protocol (one line each on stdin, from the engine): ``arm <deadline>``
(``time.monotonic()`` seconds; CLOCK_MONOTONIC is system-wide, so the
agent's deadlines are comparable here), ``disarm`` (no limit), ``fenced``
(the engine's own read-only fence is in effect: the deadline passing needs
no stop), ``unfenced``, ``quit``. A deadline is acted on once: when it
passes, the fencer stops the postmaster unless the engine is fenced or the
server is a standby (``pgdata/standby.signal`` exists: PostgreSQL removes
it at promotion before accepting writes), then forgets the deadline.

On firing it writes ``--record`` (JSON, atomically), then signals, and exits with
``EXIT_FIRED``; it exits 0 when the postmaster exits or on ``quit`` (if
stdin closes without ``quit``, it keeps enforcing the last deadline). Run it
by path (``python -I -S fencer.py``): it imports only the standard library so
it starts in milliseconds.
"""
from __future__ import annotations

import argparse
import enum
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, replace

EXIT_FIRED = 3
REASON = "stop: lease deadline passed (fencer: immediate shutdown)"
KILL_AFTER_S = 10.0
RT_PRIORITY = 10     # SCHED_FIFO priority (1..99): above every normal process, below kernel threads


@dataclass(frozen=True)
class FencerState:
    """What the fencer knows: the armed deadline and whether the engine is fenced."""
    deadline: float | None = None
    fenced: bool = False


class Act(enum.Enum):
    WAIT = "wait"        # nothing due (wait for input until the deadline, or forever)
    FIRE = "fire"        # deadline passed on an unfenced primary: stop the postmaster
    DISARM = "disarm"    # deadline passed but no writes can be acknowledged anyway


def apply(state: FencerState, line: str) -> FencerState:
    """The state after one protocol line (``quit`` is handled by the loop).
    Raises ValueError on anything else."""
    word, _, arg = line.strip().partition(" ")
    if word == "arm":
        return replace(state, deadline=float(arg))
    if word == "disarm":
        return replace(state, deadline=None)
    if word in ("fenced", "unfenced"):
        return replace(state, fenced=word == "fenced")
    raise ValueError(f"unknown fencer command {line!r}")


def decide(state: FencerState, now: float, standby: bool) -> tuple[Act, float | None]:
    """The next action and, for WAIT, how long until the deadline (None: no limit)."""
    if state.deadline is None:
        return Act.WAIT, None
    if now < state.deadline:
        return Act.WAIT, state.deadline - now
    if state.fenced or standby:
        return Act.DISARM, None
    return Act.FIRE, None


class Fencer:
    """The fencer loop over real file descriptors (see the module docstring)."""

    def __init__(self, inp: int, pidfd: int, pid: int, pgdata: str, record: str, state: FencerState,
                 clock=time.monotonic):
        self.inp, self.pidfd, self.pid = inp, pidfd, pid
        self.pgdata, self.record = pgdata, record
        self.state = state
        self.clock = clock
        self._buf = b""
        self._quit = False
        self._eof = False

    def is_standby(self) -> bool:
        return os.path.exists(os.path.join(self.pgdata, "standby.signal"))

    def run(self) -> int:
        """Loop until the postmaster exits, ``quit``, or firing."""
        while not self._quit:
            now = self.clock()
            due = self.state.deadline is not None and now >= self.state.deadline
            act, wait = decide(self.state, now, due and self.is_standby())
            if act is Act.WAIT:
                self._read(wait, self.state.deadline)
                continue
            if self._read(0.0):       # input queued before the deadline (an extension?) comes first
                continue
            if act is Act.FIRE:
                return self.fire()
            _log(f"deadline {self.state.deadline:.3f} passed; "
                 f"{'engine fenced' if self.state.fenced else 'standby'}: nothing to stop")
            self.state = replace(self.state, deadline=None)
        return 0

    def _read(self, timeout: float | None, deadline: float | None = None) -> bool:
        """Wait up to ``timeout`` for input or the postmaster's exit; True if
        anything arrived (then the state, or ``_quit``, changed).

        With a ``deadline`` on the real monotonic clock, wait on an absolute
        timer (timerfd) instead of the relative timeout: a select() frozen
        with its process (SIGSTOP, cgroup freezer) resumes with the time that
        was left when it froze, so the fencer fired a whole freeze late while
        the thawed backends went on acknowledging."""
        watch = [self.pidfd] if self._eof else [self.inp, self.pidfd]
        if deadline is not None and timeout is not None and self.clock is time.monotonic:
            timer = _deadline_timer(deadline)
            if timer is not None:
                watch.append(timer)
                timeout = None
        ready, _, _ = select.select(watch, [], [], timeout)
        if self.pidfd in ready:
            self._quit = True
            return True
        if self.inp not in ready:
            return False
        data = os.read(self.inp, 4096)
        if not data:        # the engine vanished without "quit": keep enforcing the last deadline
            self._eof = True
            return True
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if line == "quit":
                self._quit = True
            elif line:
                try:
                    self.state = apply(self.state, line)
                except ValueError as exc:
                    _log(str(exc))
        return True

    def fire(self) -> int:
        """Stop the server at once, record it, then SIGKILL the postmaster.

        First SIGSTOP the postmaster (it can then neither fork nor reap, so the
        PIDs of its children stay theirs) and SIGKILL every child: a backend
        dies wherever it is, even stopped, without waiting to be scheduled,
        and without the postmaster having to run to forward a signal. After a
        freeze of the whole tree (``docker pause``) the backends and this
        process wake together; this makes the fencer's first few hundred
        microseconds the only window in which a backend can still answer. The
        record comes next (before the postmaster can exit) so that the engine
        never sees a dead postmaster without knowing the fencer stopped it;
        then SIGKILL the postmaster too. (Not SIGQUIT: an immediate shutdown
        still accepts the connections queued during a freeze and forks a
        child for each, which it waits up to 5 s for before exiting.) The
        next start runs crash recovery, as after an immediate shutdown."""
        deadline, now = self.state.deadline, self.clock()
        self._signal(signal.SIGSTOP)
        killed = kill_children(self.pid)
        late_ms = round((now - deadline) * 1000, 1)
        rec = {"reason": REASON, "deadline": deadline, "fired_at": now, "late_ms": late_ms,
               "postmaster_pid": self.pid, "children_killed": len(killed), "wall_time": time.time()}
        tmp = self.record + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.replace(tmp, self.record)
        except OSError as exc:      # a full disk: the stop matters more; the exit code tells it fired
            _log(f"cannot write {self.record} ({exc}); stopping the postmaster anyway")
        self._signal(signal.SIGKILL)
        _log(f"lease deadline {deadline:.3f} passed {late_ms} ms before: SIGKILL {len(killed)} children "
             f"and postmaster {self.pid}")
        ready, _, _ = select.select([self.pidfd], [], [], KILL_AFTER_S)
        if not ready:
            _log(f"postmaster {self.pid} still running {KILL_AFTER_S:g}s after SIGKILL: again")
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return EXIT_FIRED

    def _signal(self, sig: int) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass


_TIMER: list[int] = []     # one timerfd per fencer process, created on first use


def _deadline_timer(deadline: float) -> int | None:
    """A timerfd on CLOCK_MONOTONIC that becomes readable at ``deadline``
    (absolute, so time spent frozen counts); None if timerfd is unavailable.
    Re-arming it also clears an earlier expiry."""
    import ctypes

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    class Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

    libc = ctypes.CDLL(None, use_errno=True)
    if not _TIMER:
        fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_CLOEXEC | os.O_NONBLOCK)
        if fd < 0:
            return None
        _TIMER.append(fd)
    sec = max(deadline, 1e-9)
    value = Itimerspec(Timespec(0, 0), Timespec(int(sec), int((sec - int(sec)) * 1e9)))
    if libc.timerfd_settime(_TIMER[0], 1, ctypes.byref(value), None) != 0:    # 1 = TFD_TIMER_ABSTIME
        return None
    return _TIMER[0]


def kill_children(pid: int) -> list[int]:
    """SIGKILL every child of the (stopped) process ``pid``; returns their PIDs.
    Safe against PID reuse only while ``pid`` is stopped: it cannot reap them."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except (OSError, ValueError):
        kids = _children_by_scan(pid)
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return kids


def _children_by_scan(pid: int) -> list[int]:
    """Children of ``pid`` from /proc/*/stat (kernels without the children file)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def run_first() -> str:
    """Ask for a real-time scheduling class (SCHED_FIFO, low priority), so that
    when this process and the server's wake together (a thawed cgroup, a
    resumed VM) the kernel runs this one first. Needs CAP_SYS_NICE (the agent
    runs as root); otherwise fall back to the best nice value allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
        return "SCHED_FIFO"
    except OSError as exc:
        try:
            os.nice(-20)
        except OSError:
            pass
        return f"not real-time ({exc.strerror}); nice {os.nice(0)}"


def die_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG(SIGKILL), set here rather than in a ``preexec_fn``:
    forking a multi-threaded agent (gRPC) and running Python before exec can
    abort the child. Exits if the parent is already gone."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)


def _log(msg: str) -> None:
    sys.stderr.write(f"walrus-pg-fencer[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Stop a postmaster when the lease deadline passes unextended.")
    p.add_argument("--pidfd", type=int, required=True, help="pidfd of the postmaster (inherited)")
    p.add_argument("--pid", type=int, required=True, help="PID of the postmaster (for messages)")
    p.add_argument("--pgdata", required=True)
    p.add_argument("--record", required=True, help="file written when the fencer fires")
    p.add_argument("--deadline", type=float, default=None)
    p.add_argument("--fenced", action="store_true")
    p.add_argument("--parent", type=int, default=0, help="the agent's PID: die with it")
    a = p.parse_args(argv)
    if a.parent:
        die_with_parent(a.parent)
    sched = run_first()
    if sched != "SCHED_FIFO":
        _log(f"scheduling: {sched}")
    state = FencerState(deadline=a.deadline, fenced=a.fenced)
    return Fencer(sys.stdin.fileno(), a.pidfd, a.pid, a.pgdata, a.record, state).run()


if __name__ == "__main__":
    sys.exit(main())
