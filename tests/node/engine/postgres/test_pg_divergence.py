"""The divergence check that lets a crashed old primary start directly as a
standby: pure parsing/decision units, and the rejoin of a stopped primary on
real servers (no divergence: NONE, never ready as a primary; divergence: rewind)."""
from __future__ import annotations

import os
import signal

import pytest

from pgtest_util import sql, streaming, upstream_of, wait_until
from walrus_ha.node.engine.base import RejoinMethod, Role
from walrus_ha.node.engine.postgres import divergence
from walrus_ha.node.engine.postgres.divergence import WalEnd

CONTROLDATA = """pg_control version number:            1300
Database cluster state:               in production
Latest checkpoint's REDO location:    0/20000D8
Latest checkpoint's TimeLineID:       1
"""


def test_parse_history_and_controldata():
    assert divergence.parse_history("1\t0/4C56330\tno recovery target specified\n\n"
                                    "2\t0/5000000\tno recovery target specified\n") == {1: 0x4C56330,
                                                                                         2: 0x5000000}
    assert divergence.parse_controldata(CONTROLDATA) == ("in production", 1, "0/20000D8")


def test_parse_waldump_end():
    err = "pg_waldump: error: error in WAL record at 0/4C56198: invalid record length at 0/4C56330: wanted 24, got 0"
    assert divergence.parse_waldump_end(err) == 0x4C56330
    assert divergence.parse_waldump_end("pg_waldump: error: could not find file \"000000010000000000000009\"") is None


def test_within_history():
    hist = {1: 0x4000, 2: 0x9000}
    assert divergence.within_history(WalEnd(1, 0x4000), 3, hist)       # ends at the switchpoint
    assert divergence.within_history(WalEnd(2, 0x8000), 3, hist)
    assert not divergence.within_history(WalEnd(1, 0x4001), 3, hist)   # wrote past it: rewind
    assert not divergence.within_history(WalEnd(3, 0x1000), 3, hist)   # same timeline: unknown
    assert not divergence.within_history(WalEnd(4, 0x1000), 3, hist)
    assert not divergence.within_history(WalEnd(1, 0x10), 2, {})        # no history: unknown


def _crash(engine) -> None:
    """What the agent's death does to its postmaster (parent-death SIGQUIT)."""
    os.kill(engine.postmaster_pid, signal.SIGQUIT)
    wait_until(lambda: not engine._running(), what="postmaster gone")


def _keys(engine):
    return {r[0] for r in sql(engine, "SELECT k FROM kv")}


def _ready_as_primary_lines(engine) -> int:
    text = (engine.dir.root / "postgres.log").read_text(errors="replace")
    return text.count("database system is ready to accept connections")


@pytest.mark.postgres
@pytest.mark.integration
def test_crashed_primary_without_divergence_starts_as_standby(pg_factory):
    a = pg_factory.primary("a")
    sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    b = pg_factory.standby("b", a)
    sql(a, "INSERT INTO kv SELECT 'old' || g, 'x' FROM generate_series(1, 100) g")
    wait_until(lambda: _keys(b) == _keys(a), what="replicated")
    _crash(a)
    b.promote(1)
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    ready_before = _ready_as_primary_lines(a)
    a.fence("agent starting: leadership not proven")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.NONE
    assert a.status().role is Role.STANDBY
    wait_until(lambda: streaming(a, b), what="old primary streams")
    wait_until(lambda: "new" in _keys(a), what="new leader's write replicated")
    assert _ready_as_primary_lines(a) == ready_before       # never up as a primary


@pytest.mark.postgres
@pytest.mark.integration
def test_crashed_diverged_primary_is_rewound(pg_factory):
    a = pg_factory.primary("a")
    sql(a, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
    b = pg_factory.standby("b", a)
    wait_until(lambda: streaming(b, a), what="b streams")
    b.promote(1)                                             # a keeps running: split brain
    sql(a, "INSERT INTO kv VALUES ('lost', '1')")
    sql(b, "INSERT INTO kv VALUES ('new', '1')")
    _crash(a)
    ready_before = _ready_as_primary_lines(a)
    a.fence("agent starting: leadership not proven")
    assert a.rejoin(upstream_of(b), 1) is RejoinMethod.REWOUND
    wait_until(lambda: streaming(a, b), what="rewound old primary streams")
    wait_until(lambda: _keys(a) == {"new"}, what="divergent row gone")
    assert _ready_as_primary_lines(a) == ready_before
