"""Freeze a whole process tree at once, as ``docker pause`` or a paused VM does.

``TreeFreeze(root_pid).freeze()`` stops ``root_pid`` and every descendant
(for a node: the agent, the postmaster, every backend and the lease fencer);
``thaw()`` resumes them all. With a writable cgroup v1 freezer
(``/sys/fs/cgroup/freezer``, what ``docker pause`` uses) the tree is moved
into a fresh cgroup and frozen and thawed by the kernel in one step, then
moved back. Otherwise every PID gets SIGSTOP, and SIGCONT in the same order
(root first) on thaw. ``method`` says which was used.
"""
from __future__ import annotations

import os
import signal
import time

FREEZER = "/sys/fs/cgroup/freezer"


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, parents before children (all threads' children)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split() if int(c) not in out]
            except (OSError, ValueError):
                continue
    return out


def _freezer_cgroup(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "freezer" in controllers.split(","):
                    return path
    except OSError:
        pass
    return None


class TreeFreeze:
    """Freeze / thaw one process tree (see the module docstring)."""

    def __init__(self, root: int, use_cgroup: bool = True):
        self.root = root
        self.pids: list[int] = []
        self.method = ""
        self._cg: str | None = None
        self._home: str | None = None
        self._use_cgroup = use_cgroup

    def freeze(self) -> list[int]:
        """Stop the tree; returns the PIDs frozen."""
        self._home = _freezer_cgroup(self.root) if self._use_cgroup else None
        if self._home is not None and os.access(FREEZER, os.W_OK):
            try:
                return self._freeze_cgroup()
            except OSError:
                self._cleanup_cgroup()
        self.method = "sigstop"
        for _ in range(2):      # a second pass catches children forked meanwhile
            for pid in tree_pids(self.root):
                if pid not in self.pids:
                    self.pids.append(pid)
                    _kill(pid, signal.SIGSTOP)
        return self.pids

    def _freeze_cgroup(self) -> list[int]:
        self._cg = f"{FREEZER}/walrus-drill-{os.getpid()}-{self.root}"
        os.makedirs(self._cg, exist_ok=True)
        for _ in range(2):      # a child forked while moving lands in the old cgroup: move it too
            for pid in tree_pids(self.root):
                if pid not in self.pids:
                    _write(f"{self._cg}/cgroup.procs", str(pid))
                    self.pids.append(pid)
            _write(f"{self._cg}/freezer.state", "FROZEN")
        deadline = time.monotonic() + 5.0
        while _read(f"{self._cg}/freezer.state") != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.001)
        self.method = "cgroup-freezer"
        return self.pids

    def thaw(self) -> None:
        """Resume every frozen process (idempotent)."""
        if self.method == "cgroup-freezer" and self._cg:
            try:
                _write(f"{self._cg}/freezer.state", "THAWED")
            finally:
                self._cleanup_cgroup()
        elif self.method == "sigstop":
            for pid in self.pids:
                _kill(pid, signal.SIGCONT)
        self.method = ""

    def _cleanup_cgroup(self) -> None:
        """Move every task back where the tree came from and remove the cgroup."""
        if not self._cg:
            return
        home = f"{FREEZER}{self._home if self._home not in (None, '/') else ''}/cgroup.procs"
        try:
            _write(f"{self._cg}/freezer.state", "THAWED")
            for pid in _read(f"{self._cg}/cgroup.procs").split():
                try:
                    _write(home, pid)
                except OSError:
                    pass
            os.rmdir(self._cg)
        except OSError:
            pass
        self._cg = None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
