"""The agent drives real PostgreSQL too: bootstrap + clone, hand-driven
failover after SIGKILL, and the old primary coming back as a standby (started
directly as one: never up as a primary, not even fenced)."""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import grpc
import pytest

from agent_procs import ROLE_PRIMARY, ROLE_STANDBY, Agents, wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.protos import node_agent_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PG_TIMING = {"engine": "postgres", "ttl": 10.0, "loop_wait": 1.0, "retry_timeout": 3.0, "safety_margin": 1.0,
             "bootstrap_wait": 0.5}


@pytest.fixture
def pg_agents(etcd, cluster_name):
    """Agents whose data dirs the ``postgres`` OS user can reach (tmp_path is 0700)."""
    from walrus_ha.common.errors import EngineError
    from walrus_ha.node.engine.postgres.binaries import find_binaries
    try:
        find_binaries("")
    except EngineError as exc:
        pytest.skip(str(exc))
    base = tempfile.mkdtemp(prefix="walrus-agent-pg-", dir="/tmp")
    os.chmod(base, 0o711)
    group = Agents(pathlib.Path(base), etcd.endpoint, cluster_name)
    try:
        yield group
    finally:
        group.close()
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_failover_and_rejoin(pg_agents, etcd):
    agents = pg_agents
    for n in ("a", "b"):
        agents.add(n, **PG_TIMING)
    old = agents.wait_primary(timeout=120)
    new = agents["b" if old.name == "a" else "a"]
    agents.wait_standby_of(new.name, old.name, timeout=120)
    assert old.status().engine.role == ROLE_PRIMARY
    old.kill()

    def leader_gone():
        with Dcs([etcd.endpoint], agents.cluster) as dcs:
            return dcs.read_view().leader is None
    wait_for(leader_gone, timeout=60, what="leader lease expiry")
    reply = new.agent.Promote(pb.PromoteRequest(term=2, reason="test"), timeout=60)
    assert reply.changed and reply.status.engine.role == ROLE_PRIMARY and not reply.status.engine.fenced
    ready_as_primary = _ready_as_primary_lines(old)
    old.start()
    agents.wait_standby_of(old.name, new.name, timeout=120)
    st = old.status()
    assert st.engine.role == ROLE_STANDBY and not st.holds_leader
    assert _ready_as_primary_lines(old) == ready_as_primary


def _ready_as_primary_lines(proc) -> int:
    """How often the node's PostgreSQL came up read-write ("read-only" for a standby)."""
    log = proc.dir / "data" / "postgres.log"
    return log.read_text(errors="replace").count("database system is ready to accept connections")


def _postmaster_pid(proc) -> int:
    """The PID in the node's postmaster.pid (0 when absent)."""
    try:
        return int((proc.dir / "data" / "pgdata" / "postmaster.pid").read_text().split("\n")[0])
    except (OSError, ValueError):
        return 0


def test_postmaster_killed_alone_is_restarted_writable_in_place(pg_agents):
    """Issue 10 item 1: SIGKILL of the postmaster only (the agent lives on,
    holding the leader key): the agent restarts PostgreSQL fenced and unfences
    it in place once a renewal sent after the restart is confirmed; it never
    stays fenced while it renews the lease."""
    import signal as _signal

    from walrus_ha.tools.drill.pg_backend import PgWriter
    agents = pg_agents
    a = agents.add("a", **PG_TIMING)
    agents.wait_primary(timeout=120)
    term = a.status().leader_term
    writer = PgWriter(a.data_address)
    try:
        writer.write("before-kill", "1")
        old_pid = _postmaster_pid(a)
        assert old_pid
        os.kill(old_pid, _signal.SIGKILL)

        def writable_again():
            pid = _postmaster_pid(a)
            if pid in (0, old_pid):
                return False
            s = a.status()
            if not (s.holds_leader and s.engine.role == ROLE_PRIMARY and not s.engine.fenced):
                return False
            try:
                writer.write("after-kill", "1")
                return True
            except Exception:
                return False
        wait_for(writable_again, timeout=90, what="the same node writable again after its postmaster died")
        s = a.status()
        assert s.leader_term == term            # in place: no new term, no failover
        assert writer.exists("before-kill") and writer.exists("after-kill")
    finally:
        writer.close()
    assert "leader.restarted_in_place" in a.log_text()


def test_planned_restart_of_the_postgres_primary_and_reinit_of_its_standby(pg_agents):
    """Issue 13 part 10: NodeAgent.Restart on the primary is a clean stop and
    start of a new postmaster under the same leader key and term; writes
    before it are kept and writes after it are accepted. With ``pending`` and
    no setting waiting for a restart, nothing happens. NodeAgent.Reinit on a
    standby re-clones it (a fresh pgdata) and it streams again; on the
    primary it is refused."""
    from walrus_ha.tools.drill.pg_backend import PgWriter
    agents = pg_agents
    a = agents.add("a", **PG_TIMING)
    agents.wait_primary(timeout=120)
    term = a.status().leader_term
    writer = PgWriter(a.data_address)
    try:
        writer.write("before-restart", "1")
        old_pid = _postmaster_pid(a)
        idle = a.agent.Restart(pb.RestartRequest(role="primary", pending=True), timeout=60)
        assert not idle.changed and _postmaster_pid(a) == old_pid
        reply = a.agent.Restart(pb.RestartRequest(role="primary", reason="test"), timeout=120)
        assert reply.changed and reply.status.holds_leader and reply.status.state == "primary", reply
        assert _postmaster_pid(a) not in (0, old_pid)

        def writable_again():
            try:
                writer.write("after-restart", "1")
                return True
            except Exception:
                return False
        wait_for(writable_again, timeout=60, what="the restarted primary takes writes")
        s = a.status()
        assert s.leader_term == term and s.holds_leader and not s.engine.fenced
        assert writer.exists("before-restart") and writer.exists("after-restart")

        b = agents.add("b", **PG_TIMING)
        agents.wait_standby_of("b", "a", timeout=120)
        with pytest.raises(grpc.RpcError) as refused:
            a.agent.Reinit(pb.ReinitRequest(reason="test"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        marker = b.dir / "data" / "pgdata" / "reinit-marker"
        marker.write_text("a re-clone wipes pgdata")
        assert b.agent.Reinit(pb.ReinitRequest(reason="test"), timeout=10).changed
        wait_for(lambda: not marker.exists() and not b.status().engine.needs_reclone, timeout=120,
                 what="b re-cloned")
        agents.wait_standby_of("b", "a", timeout=120)
    finally:
        writer.close()
