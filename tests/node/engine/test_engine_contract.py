"""The engine contract: one suite, run against every engine implementation.

Each engine gets a small harness (how to build one on a free port, how a
client writes and reads a key); the tests themselves only use the
``node.engine.base.Engine`` protocol plus that harness, and assert on roles,
terms, timelines and data. An engine that is not importable or cannot run
here is skipped with the reason.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time

import pytest

from support_wait import wait_for
from walrus_ha.common.errors import StaleTerm, WalrusError
from walrus_ha.node.engine.base import Engine, RejoinMethod, Role, SyncMethod, SyncSpec, Upstream

pytestmark = pytest.mark.integration


class Refused(Exception):
    """A client write was not acknowledged."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresHarness:
    kind = "postgres"

    def __init__(self, base: str):
        from walrus_ha.node.engine.postgres import PostgresEngine
        from walrus_ha.node.engine.postgres.binaries import find_binaries
        find_binaries()                      # EngineError -> skipped by the fixture
        self.base, self.cls = base, PostgresEngine

    def make(self, name: str) -> Engine:
        return self.cls(name, os.path.join(self.base, name), f"127.0.0.1:{_free_port()}")

    def write(self, engine, key: str, value: str) -> None:
        import psycopg

        from walrus_ha.tools.drill.pg_backend import PgWriter
        w = PgWriter(engine.data_address)
        try:
            w.write(key, value)
        except psycopg.Error as exc:
            raise Refused(str(exc)) from None
        finally:
            w.close()

    def read(self, engine, key: str) -> bool:
        from walrus_ha.tools.drill.pg_backend import PgWriter
        w = PgWriter(engine.data_address)
        try:
            return w.exists(key)
        finally:
            w.close()


class EmbeddedHarness:
    kind = "embedded"

    def __init__(self, base: str):
        from walrus_ha.node.engine.embedded import EmbeddedEngine
        self.base, self.cls = base, EmbeddedEngine

    def make(self, name: str) -> Engine:
        return self.cls(name, os.path.join(self.base, name), f"127.0.0.1:{_free_port()}")

    def write(self, engine, key: str, value: str) -> None:
        try:
            engine.write([(key.encode(), value.encode())], None)
        except WalrusError as exc:
            raise Refused(str(exc)) from None

    def read(self, engine, key: str) -> bool:
        return engine.read(key.encode()).found


HARNESSES = {"postgres": PostgresHarness, "embedded": EmbeddedHarness}


@pytest.fixture(params=sorted(HARNESSES))
def eng(request):
    """A harness plus ``new(name)`` / ``primary()`` / ``standby(name, up)`` builders."""
    base = tempfile.mkdtemp(prefix="walrus-pg-contract-", dir="/tmp")
    os.chmod(base, 0o711)     # the postgres OS user must reach its data dirs
    try:
        h = HARNESSES[request.param](base)
    except (ImportError, WalrusError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"{request.param} engine unavailable here: {exc}")
    made: list = []

    def new(name):
        e = h.make(name)
        made.append(e)
        return e

    def primary(name="a"):
        e = new(name)
        e.bootstrap()
        e.start()
        return e

    def standby(name, up):
        e = new(name)
        e.clone(up_of(up))
        e.start()
        return e

    h.new, h.primary, h.standby = new, primary, standby
    yield h
    for e in made:
        try:
            e.stop()
        except Exception:  # noqa: BLE001 - stop the rest anyway
            pass
    shutil.rmtree(base, ignore_errors=True)


def up_of(engine) -> Upstream:
    return Upstream(engine.name, engine.data_address)


def wait_until(cond, timeout: float = 30.0, what: str = "condition"):
    return wait_for(cond, timeout, what=what, retry_on=(Exception,))


def _refused(eng, engine, key: str) -> bool:
    try:
        eng.write(engine, key, "v")
    except Refused:
        return True
    return False


def test_bootstrap_start_stop_idempotent(eng):
    a = eng.new("a")
    assert not a.is_initialized()
    a.bootstrap()
    assert a.is_initialized()
    a.start()
    a.start()
    st = a.status()
    assert st.role is Role.PRIMARY and st.timeline == 1 and st.engine == eng.kind
    assert isinstance(a, Engine)
    a.stop()
    a.stop()
    assert a.status().role is Role.STOPPED


def test_clone_streams_and_standby_refuses_writes(eng):
    a = eng.primary()
    b = eng.standby("b", a)
    eng.write(a, "k1", "v1")
    wait_until(lambda: eng.read(b, "k1"), what="k1 on standby")
    st = b.status()
    assert st.role is Role.STANDBY and st.streaming and st.upstream == f"a@{a.data_address}"
    wait_until(lambda: b.status().flush_lsn >= a.status().flush_lsn > 0, what="standby caught up")
    assert _refused(eng, b, "k2")
    wait_until(lambda: [s.name for s in a.status().standbys] == ["b"], what="standby listed")


def test_promote_follow_and_stale_terms(eng):
    a = eng.primary()
    b = eng.standby("b", a)
    c = eng.standby("c", a)
    eng.write(a, "k1", "v1")
    wait_until(lambda: eng.read(b, "k1") and eng.read(c, "k1"), what="replicated")
    a.stop()
    st = b.promote(3)
    assert st.role is Role.PRIMARY and st.term == 3 and st.timeline == 2
    assert b.promote(3).role is Role.PRIMARY        # idempotent
    with pytest.raises(StaleTerm):
        b.promote(2)
    eng.write(b, "k2", "v2")
    c.follow(up_of(b), 3)
    wait_until(lambda: eng.read(c, "k2"), what="c follows b")
    assert c.status().timeline == 2 and c.status().term == 3
    with pytest.raises(StaleTerm):
        c.follow(up_of(b), 1)


def test_rejoin_diverged_old_primary(eng):
    a = eng.primary()
    b = eng.standby("b", a)
    eng.write(a, "common", "v")
    wait_until(lambda: eng.read(b, "common"), what="replicated")
    b.promote(1)                              # a is still running and writable
    eng.write(a, "diverged", "v")
    eng.write(b, "new", "v")
    method = a.rejoin(up_of(b), 1)
    assert method in (RejoinMethod.REWOUND, RejoinMethod.RECLONED)
    wait_until(lambda: a.status().streaming, what="old primary streams")
    wait_until(lambda: eng.read(a, "new"), what="new primary's write")
    assert not eng.read(a, "diverged") and eng.read(a, "common")
    assert a.status().role is Role.STANDBY
    assert _refused(eng, a, "late")


def test_fence_and_lease_deadline_refuse_writes(eng):
    a = eng.primary()
    eng.write(a, "k1", "v")
    a.fence("contract")
    assert a.status().fenced and a.status().fence_reason
    assert _refused(eng, a, "k2")
    a.unfence()
    eng.write(a, "k3", "v")
    a.set_lease_deadline(time.monotonic() + 3600)
    eng.write(a, "k4", "v")
    a.set_lease_deadline(time.monotonic() - 1)
    wait_until(lambda: _refused(eng, a, f"k5-{time.monotonic()}"), what="writes refused after the deadline")
    a.set_lease_deadline(None)
    a.unfence()
    wait_until(lambda: not _refused(eng, a, f"k6-{time.monotonic()}"), what="writable again")


def test_sync_standbys_applied(eng):
    a = eng.primary()
    b = eng.standby("b", a)
    a.set_sync_standbys(SyncSpec(SyncMethod.FIRST, 1, ("b",)))
    assert "FIRST 1" in a.status().sync_standbys
    wait_until(lambda: {s.name: s.sync_state for s in a.status().standbys}.get("b") == "sync", what="b sync")
    eng.write(a, "k", "v")
    assert eng.read(b, "k") or b.status().flush_lsn > 0
    a.set_sync_standbys(SyncSpec())
    assert a.status().sync_standbys == ""
