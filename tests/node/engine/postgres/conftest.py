"""Fixtures for the PostgreSQL engine tests (real PostgreSQL 15 processes).

* ``pg_factory``: builds ``PostgresEngine``s (``pg_factory(name)``,
  ``.primary(name)``, ``.standby(name, upstream)``) on free 127.0.0.1 ports,
  under a per-test ``/tmp/walrus-pg-*`` directory (mode 0711, so the
  ``postgres`` OS user can reach the data dirs; pytest's tmp_path is 0700
  root). Every engine it made is stopped (its postmaster, by PID) afterwards.
* ``pg_pair``: a module-scoped primary ``a`` + streaming standby ``b-1`` with
  a ``kv`` table; tests that disturb it must restore it.
"""
from __future__ import annotations

import shutil

import pytest

from pgtest_util import Factory, _make_base, _require_pg, sql


@pytest.fixture
def pg_factory():
    _require_pg()
    base = _make_base()
    f = Factory(base)
    yield f
    f.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_pair():
    _require_pg()
    base = _make_base()
    f = Factory(base)
    try:
        a = f.primary("a")
        b = f.standby("b-1", a)
        sql(a, "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text)")
        yield a, b
    finally:
        f.close()
        shutil.rmtree(base, ignore_errors=True)
