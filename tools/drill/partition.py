"""Cut process trees off from TCP ports on loopback: a network partition
between processes of one host, for the ``partition-primary`` drill.

``Partition().cut(group, pids, ports)`` moves ``pids`` into a fresh cgroup
v2 group and adds one iptables rule per port that drops that group's
packets to the port on ``lo`` (``-m cgroup --path``, tagged with a comment
naming this drill process). Children forked later inherit the group. A
socket keeps the cgroup it was created in, so connections that exist at the
cut are dropped by their port pairs (found through ``/proc``) instead.
``heal()`` deletes exactly the rules it added, moves the processes back to
the root group and removes the groups; it runs in a ``finally`` of the round,
so Ctrl-C and failed rounds heal too. ``problem()`` says why it cannot run
here (not root, no iptables, no writable cgroup v2), or None.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

COMMENT_PREFIX = "walrus-drill"


def cgroup2_root() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid), or None."""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


def problem() -> str | None:
    """Why partitions cannot be made on this host, or None."""
    if os.geteuid() != 0:
        return "needs root (iptables and cgroups)"
    if shutil.which("iptables") is None:
        return "needs iptables (apt-get install iptables)"
    root = cgroup2_root()
    if root is None or not os.access(os.path.join(root, "cgroup.procs"), os.W_OK):
        return "needs a writable cgroup v2 hierarchy"
    return None


class Partition:
    """The groups and rules of one partition (see the module docstring)."""

    def __init__(self, tag: str) -> None:
        self.root = cgroup2_root() or "/sys/fs/cgroup"
        self.comment = f"{COMMENT_PREFIX}-{os.getpid()}-{tag}"
        self.rules: list[list[str]] = []
        self.groups: dict[str, list[int]] = {}

    def _group(self, name: str) -> str:
        return f"{self.comment}-{name}"

    def cut(self, name: str, pids: list[int], ports: list[int]) -> None:
        """Drop every TCP packet that the processes ``pids`` (and their future
        children) send to ``ports`` on loopback."""
        group = self._group(name)
        path = os.path.join(self.root, group)
        os.makedirs(path, exist_ok=True)
        self.groups[group] = []
        for pid in pids:
            try:
                _write(os.path.join(path, "cgroup.procs"), str(pid))
                self.groups[group].append(pid)
            except OSError:
                pass                      # exited meanwhile
        tag = ["-m", "comment", "--comment", self.comment, "-j", "DROP"]
        for port in ports:
            self._add(["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(port), "-m", "cgroup", "--path", group,
                       *tag])
        for local, remote in tcp_connections(pids):
            if remote in ports:
                self._add(["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(local), "--dport", str(remote), *tag])

    def _add(self, rule: list[str]) -> None:
        _iptables("-I", rule)
        self.rules.append(rule)

    def heal(self) -> list[str]:
        """Remove every rule and group this partition made; returns what could
        not be removed (empty when clean)."""
        left = []
        for rule in reversed(self.rules):
            try:
                _iptables("-D", rule)
            except RuntimeError as exc:
                left.append(str(exc))
        self.rules.clear()
        for group in list(self.groups):
            why = self._remove_group(os.path.join(self.root, group))
            if why:
                left.append(f"cgroup {group}: {why}")
            del self.groups[group]
        return left


    def _remove_group(self, path: str, attempts: int = 50) -> str:
        """Move every process out of the group and remove it; a process may
        fork into the group meanwhile (a postmaster starting a backend), so
        repeat until it is empty. Returns why it could not be removed ("" = done)."""
        why = ""
        for _ in range(attempts):
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    members = [int(p) for p in f.read().split()]
            except FileNotFoundError:
                return ""
            except OSError as exc:
                return exc.strerror or str(exc)
            for pid in members:
                try:
                    _write(os.path.join(self.root, "cgroup.procs"), str(pid))
                except OSError:
                    pass            # exited meanwhile
            try:
                os.rmdir(path)
                return ""
            except FileNotFoundError:
                return ""
            except OSError as exc:
                why = exc.strerror or str(exc)
                time.sleep(0.02)
        return why


def tcp_connections(pids: list[int]) -> list[tuple[int, int]]:
    """(local port, remote port) of every TCP socket the processes hold open."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[9] in inodes and cols[2].split(":")[1] != "0000":
                found.append((int(cols[1].split(":")[1], 16), int(cols[2].split(":")[1], 16)))
    return found


def _iptables(op: str, rule: list[str]) -> None:
    out = subprocess.run(["iptables", "-w", "5", op, *rule], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"iptables {op} {' '.join(rule)}: {out.stderr.strip()}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
