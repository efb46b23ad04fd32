"""The node agent's pid file, ``<data_dir>/walrus-agent.pid``: how tools find
an agent however it was started (``walrus cluster start`` or ``walrus node
--config ...`` by hand).

The one rule: a reader trusts the file only if /proc shows that its pid is
still the process that wrote it (same kernel start time and command line)
and that this process is a ``walrus node`` run with the expected config
file; a stale or forged file is ignored, never signalled.

The agent writes the file once its gRPC port is bound, rewrites it if it
disappears (an embedded re-clone replaces the data dir) and removes it on a
clean stop.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from walrus_ha.common.procs import ProcHandle, handle_of, is_ours

PID_FILE = "walrus-agent.pid"


@dataclass(frozen=True)
class AgentPid:
    """What the agent wrote about itself."""
    handle: ProcHandle
    name: str
    config: str            # absolute path of its config file
    agent_address: str

    def to_json(self) -> dict:
        return {**self.handle.to_json(), "name": self.name, "config": self.config,
                "agent_address": self.agent_address}

    @classmethod
    def from_json(cls, data: dict) -> AgentPid:
        return cls(ProcHandle.from_json(data), str(data["name"]), str(data["config"]),
                   str(data.get("agent_address", "")))


def path_for(data_dir: str) -> str:
    return os.path.join(data_dir, PID_FILE)


def write(data_dir: str, name: str, config_path: str, agent_address: str) -> AgentPid:
    """Record this process in ``data_dir`` (created if missing); atomic
    (temp file + rename). Raises OSError if it cannot be written."""
    handle = handle_of(os.getpid())
    if handle is None:   # cannot happen for ourselves while /proc is mounted
        raise OSError(f"cannot read /proc/{os.getpid()}")
    record = AgentPid(handle, name, os.path.realpath(config_path), agent_address)
    os.makedirs(data_dir, exist_ok=True)
    path = path_for(data_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record.to_json(), f)
    os.replace(tmp, path)
    return record


def read(data_dir: str) -> AgentPid | None:
    """The recorded agent, or None if there is no file or it is malformed."""
    try:
        with open(path_for(data_dir)) as f:
            return AgentPid.from_json(json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_agent(data_dir: str, config_path: str) -> AgentPid | None:
    """The agent of ``data_dir`` if it runs now and is the ``walrus node``
    run with ``config_path`` (see the module's rule); None otherwise."""
    record = read(data_dir)
    want = os.path.realpath(config_path)
    if record is None or record.config != want or not is_ours(record.handle):
        return None
    if "node" not in record.handle.cmdline or _config_of(record.handle) != want:
        return None
    return record


def _config_of(handle: ProcHandle) -> str | None:
    """The real path of the ``--config`` argument of a running process
    (relative paths resolved against its working directory)."""
    argv = list(handle.cmdline)
    value = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.partition("=")[2]
    if value is None:
        return None
    try:
        cwd = os.readlink(f"/proc/{handle.pid}/cwd")
    except OSError:
        return None
    return os.path.realpath(os.path.join(cwd, value))


def remove_if_mine(data_dir: str) -> None:
    """Remove the file if it names this process (a successor's file stays)."""
    record = read(data_dir)
    if record is not None and record.handle.pid == os.getpid():
        try:
            os.remove(path_for(data_dir))
        except FileNotFoundError:
            pass


def keep(data_dir: str, name: str, config_path: str, agent_address: str) -> bool:
    """Rewrite the file if it is gone or names another process (cheap when
    present). Never creates ``data_dir`` (it may be mid-replacement) and
    never raises: returns whether the file names this process now."""
    record = read(data_dir)
    if record is not None and record.handle.pid == os.getpid():
        return True
    if not os.path.isdir(data_dir):
        return False
    try:
        write(data_dir, name, config_path, agent_address)
    except OSError:
        return False
    return True
