"""A SIGKILLed agent takes its postmaster (and every backend) with it.

A real agent-like parent process bootstraps and starts a primary from a
short-lived thread (the spawner thread must keep the parent-death signal
armed after that thread exits), holds a client session open, and is then
SIGKILLed. The postmaster and its children must go, and the port must refuse.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import psycopg
import pytest

from pgtest_util import _make_base, _require_pg, free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.integration]

AGENT = textwrap.dedent("""
    import json, sys, threading, time
    from walrus_ha.node.engine.postgres import PostgresEngine
    eng = PostgresEngine("a", sys.argv[1], "127.0.0.1:" + sys.argv[2])
    eng.bootstrap()
    t = threading.Thread(target=eng.start)   # exits right after starting postgres
    t.start(); t.join()
    time.sleep(0.5)
    print(json.dumps({"pid": eng.postmaster_pid}), flush=True)
    time.sleep(600)
""")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"    # zombie: dead, not reaped yet
    except OSError:
        return True


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_sigkilled_agent_takes_postmaster_with_it():
    _require_pg()
    base = _make_base()
    port = free_port()
    agent = subprocess.Popen([sys.executable, "-c", AGENT, os.path.join(base, "a"), str(port)],
                             stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    pm = None
    try:
        line = agent.stdout.readline()
        assert line, "agent did not start postgres"
        pm = json.loads(line)["pid"]
        conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)
        conn.execute("CREATE TABLE t (x int)")               # a writable primary, after the thread exited
        kids = _children(pm)
        assert kids, "postmaster has no children"
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(30)
        wait_until(lambda: _gone(pm), 30, "postmaster to die with its parent")
        wait_until(lambda: all(_gone(k) for k in kids), 30, "backends to exit")
        wait_until(lambda: _refuses(port), 30, "port to refuse connections")
        with pytest.raises(psycopg.OperationalError):
            conn.execute("INSERT INTO t VALUES (1)")
        conn.close()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        if pm is not None and not _gone(pm):
            os.kill(pm, signal.SIGKILL)
        import shutil
        shutil.rmtree(base, ignore_errors=True)
