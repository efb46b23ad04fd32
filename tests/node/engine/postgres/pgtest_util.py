"""Helpers for the PostgreSQL engine tests (imported by conftest and tests)."""
from __future__ import annotations

import os
import tempfile

import psycopg
import pytest

from support_wait import wait_for
from walrus_ha.common.errors import EngineError
from walrus_ha.node.config import PostgresConfig
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.postgres import PostgresEngine
from walrus_ha.node.engine.postgres.binaries import find_binaries
from walrus_ha.tools.etcd_server import free_port


def _require_pg() -> None:
    try:
        find_binaries()
    except EngineError as exc:
        pytest.skip(str(exc))


def sql(engine: PostgresEngine, query: str, params: tuple = (), *, timeout: int = 5) -> list[tuple]:
    """One autocommit statement on ``engine`` (a fresh connection)."""
    host, port = engine.data_address.rsplit(":", 1)
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres",
                         connect_timeout=timeout, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def wait_until(cond, timeout: float = 30.0, what: str = "condition"):
    """``wait_for`` that keeps polling through any error (servers restarting)."""
    return wait_for(cond, timeout, what=what, retry_on=(Exception,))


class Factory:
    def __init__(self, base: str):
        self.base = base
        self.engines: list[PostgresEngine] = []

    def __call__(self, name: str, config: PostgresConfig | None = None, **kw) -> PostgresEngine:
        eng = PostgresEngine(name, os.path.join(self.base, name), f"127.0.0.1:{free_port()}", config, **kw)
        self.engines.append(eng)
        return eng

    def primary(self, name: str = "a", config: PostgresConfig | None = None, **kw) -> PostgresEngine:
        eng = self(name, config, **kw)
        eng.bootstrap()
        eng.start()
        return eng

    def standby(self, name: str, upstream: PostgresEngine, config: PostgresConfig | None = None) -> PostgresEngine:
        eng = self(name, config)
        eng.clone(Upstream(upstream.name, upstream.data_address))
        eng.start()
        return eng

    def close(self) -> None:
        for eng in self.engines:
            try:
                eng.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                pass


def _make_base() -> str:
    base = tempfile.mkdtemp(prefix="walrus-pg-", dir="/tmp")
    os.chmod(base, 0o711)
    return base


def upstream_of(engine: PostgresEngine) -> Upstream:
    return Upstream(engine.name, engine.data_address)


def streaming(engine: PostgresEngine, upstream: PostgresEngine | None = None) -> bool:
    st = engine.status()
    return st.streaming and (upstream is None or st.upstream.endswith(upstream.data_address))
