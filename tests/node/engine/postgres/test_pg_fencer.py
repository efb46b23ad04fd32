"""The lease fencer: its deadline logic (injected clock), its loop against a
real child process, and the real thing: an agent-like parent holding a
``PostgresEngine`` is SIGSTOPped after setting a short deadline, and
PostgreSQL must refuse writes once the deadline has passed."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pytest

from pgtest_util import _make_base, _require_pg, free_port, wait_until
from walrus_ha.node.engine.postgres import fencer
from walrus_ha.node.engine.postgres.fencer import Act, Fencer, FencerState, apply, decide

# -- pure logic ---------------------------------------------------------------------------

def test_decide_waits_until_the_deadline_then_fires_once_armed():
    s = FencerState()
    assert decide(s, 100.0, standby=False) == (Act.WAIT, None)            # disarmed: no limit
    s = apply(s, "arm 10.5")
    assert decide(s, 10.0, standby=False) == (Act.WAIT, 0.5)
    assert decide(s, 10.5, standby=False) == (Act.FIRE, None)
    s = apply(s, "arm 20")                                                  # extended
    assert decide(s, 10.5, standby=False) == (Act.WAIT, 9.5)
    assert decide(apply(s, "disarm"), 1e9, standby=False) == (Act.WAIT, None)


def test_decide_spares_a_fenced_engine_and_a_standby():
    s = apply(apply(FencerState(), "arm 5"), "fenced")
    assert decide(s, 6.0, standby=False) == (Act.DISARM, None)
    assert decide(apply(s, "unfenced"), 6.0, standby=False) == (Act.FIRE, None)
    assert decide(apply(s, "unfenced"), 6.0, standby=True) == (Act.DISARM, None)


def test_apply_rejects_junk():
    for line in ("arm", "arm soon", "stop"):
        with pytest.raises(ValueError):
            apply(FencerState(), line)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _victim():
    """A stand-in postmaster: a child we can watch through a pidfd."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    return proc, os.pidfd_open(proc.pid)


def _run_fencer(tmp_path, state: FencerState, clock: Clock, lines: bytes):
    proc, pidfd = _victim()
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, lines)
        os.close(wfd)
        (tmp_path / "pgdata").mkdir(exist_ok=True)
        f = Fencer(rfd, pidfd, proc.pid, str(tmp_path / "pgdata"), str(tmp_path / "rec.json"), state, clock)
        code = f.run()
        return code, proc, f
    finally:
        os.close(rfd)
        os.close(pidfd)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_loop_fires_at_a_passed_deadline_and_records_it(tmp_path):
    # stdin is closed (EOF, no "quit"): the fencer still enforces the deadline.
    code, proc, _ = _run_fencer(tmp_path, FencerState(deadline=100.0), Clock(100.25), b"")
    assert code == fencer.EXIT_FIRED
    assert proc.returncode == -signal.SIGKILL
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["reason"] == fencer.REASON and rec["late_ms"] == 250.0 and rec["postmaster_pid"] == proc.pid


def test_a_record_it_cannot_write_does_not_stop_the_kill(tmp_path):
    """A full disk (here: a record path it cannot create): it used to raise
    after SIGSTOP and before SIGKILL, leaving the postmaster stopped; the
    fast and immediate shutdowns of a Demote then waited on it for 40 s."""
    proc, pidfd = _victim()
    rfd, wfd = os.pipe()
    os.close(wfd)
    (tmp_path / "pgdata").mkdir()
    try:
        f = Fencer(rfd, pidfd, proc.pid, str(tmp_path / "pgdata"), str(tmp_path / "no-such-dir" / "rec.json"),
                   FencerState(deadline=100.0), Clock(100.25))
        assert f.run() == fencer.EXIT_FIRED
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        os.close(rfd)
        os.close(pidfd)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_loop_honours_an_extension_queued_before_the_deadline(tmp_path):
    # The clock is past the first deadline, but the extension is already in the pipe.
    code, proc, f = _run_fencer(tmp_path, FencerState(deadline=100.0), Clock(150.0), b"arm 1e9\nquit\n")
    assert code == 0 and proc.returncode == -signal.SIGKILL        # killed by us, not by the fencer
    assert f.state.deadline == 1e9 and not (tmp_path / "rec.json").exists()


def test_loop_leaves_a_standby_alone_and_exits_with_the_postmaster(tmp_path):
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "standby.signal").write_text("")
    proc, pidfd = _victim()
    rfd, wfd = os.pipe()
    f = Fencer(rfd, pidfd, proc.pid, str(tmp_path / "pgdata"), str(tmp_path / "rec.json"),
               FencerState(deadline=100.0), Clock(150.0))
    result = []
    t = threading.Thread(target=lambda: result.append(f.run()))
    try:
        t.start()
        wait_until(lambda: f.state.deadline is None, what="the fencer to disarm")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)
        t.join(10)
        for fd in (rfd, wfd, pidfd):
            os.close(fd)
    assert result == [0] and not (tmp_path / "rec.json").exists()


# -- a frozen agent ---------------------------------------------------------------------------

AGENT = textwrap.dedent("""
    import json, sys, time
    from walrus_ha.node.engine.postgres import PostgresEngine
    eng = PostgresEngine("a", sys.argv[1], "127.0.0.1:" + sys.argv[2])
    eng.bootstrap()
    eng.start()
    eng.set_lease_deadline(time.monotonic() + 3600)

    def reply(**kw):
        print(json.dumps(kw), flush=True)

    reply(pid=eng.postmaster_pid, fencer=eng._fencer.pid)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "deadline":        # relative seconds; replies with the absolute deadline
            d = time.monotonic() + float(cmd[1])
            eng.set_lease_deadline(d)
            reply(deadline=d)
        elif cmd[0] == "status":
            st = eng.status()
            reply(role=st.role.value, fenced=st.fenced, reason=st.fence_reason, pid=eng.postmaster_pid)
        elif cmd[0] == "unfence":
            eng.set_lease_deadline(time.monotonic() + 3600)
            eng.unfence()
            reply(pid=eng.postmaster_pid)
""")

MARGIN_S = 1.0   # fencer wake-up + SIGQUIT delivery, with room for a loaded 2-core box


class AgentProc:
    def __init__(self, base: str, port: int):
        self.proc = subprocess.Popen([sys.executable, "-c", AGENT, os.path.join(base, "a"), str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=os.getcwd())

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"agent exited ({self.proc.poll()})"
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()


def _write(conn, i: int) -> None:
    conn.execute("INSERT INTO t VALUES (%s)", (i,))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.postgres
@pytest.mark.integration
def test_frozen_agent_cannot_keep_postgres_acknowledging():
    _require_pg()
    base, port = _make_base(), free_port()
    agent = AgentProc(base, port)
    pm = fencer_pid = None
    try:
        first = agent.read()
        pm, fencer_pid = first["pid"], first["fencer"]
        conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)
        conn.execute("CREATE TABLE t (x int)")
        deadline = agent.ask("deadline 1.0")["deadline"]
        os.kill(agent.proc.pid, signal.SIGSTOP)        # like the drill: the agent's PID only
        last_ack, i = None, 0
        try:
            while time.monotonic() < deadline + 30:
                i += 1
                _write(conn, i)
                last_ack = time.monotonic()
        except psycopg.Error:
            pass
        assert last_ack is not None, "no write was acknowledged before the deadline"
        assert last_ack <= deadline + MARGIN_S, f"acknowledged {last_ack - deadline:.3f} s after the deadline"
        while time.monotonic() < deadline + MARGIN_S:
            time.sleep(0.05)
        with pytest.raises(psycopg.OperationalError):   # and nobody can connect and write either
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                 connect_timeout=3, autocommit=True) as c2:
                _write(c2, -1)
        conn.close()

        os.kill(agent.proc.pid, signal.SIGCONT)        # thawed: the engine restarts it fenced
        st = wait_until(lambda: (lambda s: s if s["role"] == "primary" and s["pid"] not in (None, pm) else None)(
            agent.ask("status")), what="restart fenced")
        assert st["fenced"] and st["reason"] == fencer.REASON
        probe = type("Probe", (), {"data_address": f"127.0.0.1:{port}"})()
        wait_until(lambda: _read_only(probe), what="the restarted server to refuse writes as read-only")
        agent.ask("unfence")                            # a new deadline + unfence: writable again
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             autocommit=True) as c4:
            _write(c4, -3)
        new_fencer = wait_until(lambda: [p for p in _children(agent.proc.pid) if p not in (pm, st["pid"])],
                                what="the new fencer")
        os.kill(agent.proc.pid, signal.SIGKILL)         # the fencer (and postmaster) die with the agent
        agent.proc.wait(30)
        wait_until(lambda: not any(_alive(p) for p in new_fencer + [st["pid"]]), what="children to die")
    finally:
        if agent.proc.poll() is None:
            os.kill(agent.proc.pid, signal.SIGCONT)
            agent.proc.kill()
            agent.proc.wait(10)
        for p in (pm, fencer_pid):
            if p is not None and _alive(p):
                os.kill(p, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                kids.append(int(entry))
    return kids


@pytest.mark.postgres
@pytest.mark.integration
def test_a_dead_fencer_is_replaced_and_still_enforces(pg_factory):
    a = pg_factory.primary("a")
    a.set_lease_deadline(time.monotonic() + 3600)
    first = a._fencer
    os.kill(first.pid, signal.SIGKILL)
    wait_until(lambda: a._fencer is not first and a._fencer.alive(), what="a new fencer")
    pid = a.postmaster_pid
    a.set_lease_deadline(time.monotonic() + 0.2)
    wait_until(lambda: a.status().fence_reason == fencer.REASON, what="the new fencer to fire")
    wait_until(lambda: a.postmaster_pid not in (None, pid), what="restart fenced")
    wait_until(lambda: _read_only(a), what="the restarted server to refuse writes as read-only")


def _read_only(eng) -> bool:
    host, port = eng.data_address.split(":")
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", autocommit=True) as c:
        try:
            c.execute("CREATE TABLE late (x int)")
        except psycopg.errors.ReadOnlySqlTransaction:
            return True
    raise AssertionError("a write was acknowledged after the deadline")


# -- the whole tree frozen (issue 10 item 6) -------------------------------------------------

FROZEN_WRITERS = 8


@pytest.mark.postgres
@pytest.mark.integration
def test_a_thawed_tree_acknowledges_no_write_sent_during_the_freeze():
    """The agent, postmaster, backends and fencer are frozen together (as
    ``docker pause`` does) past the lease deadline while clients send writes;
    on the thaw every process wakes at once and the backends find those
    writes waiting. None may be acknowledged: the fencer runs first (real-time)
    and kills the backends directly instead of asking the postmaster to."""
    from walrus_ha.tools.drill.freeze import TreeFreeze
    _require_pg()
    base, port = _make_base(), free_port()
    agent = AgentProc(base, port)
    conns: list = []
    tree = None
    try:
        first = agent.read()
        conns = [psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                 autocommit=True) for _ in range(FROZEN_WRITERS)]
        conns[0].execute("CREATE TABLE t (x int)")
        for c in conns:
            _write(c, 0)
        deadline = agent.ask("deadline 1.0")["deadline"]
        tree = TreeFreeze(agent.proc.pid)
        frozen = tree.freeze()
        method = tree.method
        assert first["pid"] in frozen and first["fencer"] in frozen
        results: list = [None] * FROZEN_WRITERS

        def attempt(i: int) -> None:
            try:
                _write(conns[i], i + 1)
                results[i] = "acknowledged"
            except psycopg.Error as exc:
                results[i] = type(exc).__name__
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(FROZEN_WRITERS)]
        try:
            for t in threads:
                t.start()
            while time.monotonic() < deadline + 1.0:   # the writes wait in the frozen backends' sockets
                time.sleep(0.05)
        finally:
            tree.thaw()
        for t in threads:
            t.join(30)
        acked = [i for i, r in enumerate(results) if r == "acknowledged"]
        assert not acked, \
            f"{len(acked)} writes sent during the freeze acknowledged after the thaw ({method}): {results}"
        st = wait_until(lambda: (lambda s: s if s["role"] == "primary" and s["pid"] not in (None, first["pid"])
                                 else None)(agent.ask("status")), what="restart fenced")
        assert st["fenced"] and st["reason"] == fencer.REASON
    finally:
        if tree is not None:
            tree.thaw()
        for c in conns:
            c.close()
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)
        for p in _children(agent.proc.pid):
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
