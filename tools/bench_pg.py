"""Measure PostgreSQL failover steps on real servers (not a test: numbers).

``python -m walrus_ha.tools.bench_pg [--rounds 5]`` builds a primary and a
standby under ``/tmp/walrus-pg-bench-*`` and ping-pongs them ``rounds`` times:

* **promote -> first write**: from calling ``promote(term)`` on the standby
  until an INSERT on a fresh connection to it commits;
* **fence**: how long ``fence()`` (read_only: reload, wait until new sessions
  are read-only, terminate client backends) takes on the new primary, which
  is then unfenced;
* **rejoin -> streaming**: the old primary (still running, and written to
  after the promotion, so it really diverged) is rejoined: from calling
  ``rejoin()`` (stop, CHECKPOINT on the new primary, pg_rewind, start as
  standby) until ``status()`` shows it streaming from the new primary.

Prints every round and the medians. Everything it starts is stopped at exit.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import time

import psycopg

from walrus_ha.common import log as wlog
from walrus_ha.node.engine.base import Upstream
from walrus_ha.node.engine.postgres import PostgresEngine


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write(engine: PostgresEngine, key: str) -> None:
    host, port = engine.data_address.split(":")
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres",
                         connect_timeout=2, autocommit=True) as c:
        c.execute("INSERT INTO bench VALUES (%s)", (key,))


def _until(cond, timeout: float = 60.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if cond():
                return time.perf_counter()
        except psycopg.Error:
            pass
        time.sleep(0.002)
    raise TimeoutError("condition not reached")


def run(rounds: int) -> tuple[list[float], list[float], list[float], list[str]]:
    base = tempfile.mkdtemp(prefix="walrus-pg-bench-", dir="/tmp")
    os.chmod(base, 0o711)
    engines = [PostgresEngine(n, os.path.join(base, n), f"127.0.0.1:{_port()}") for n in ("a", "b")]
    promote_s, rejoin_s, fence_s, methods = [], [], [], []
    try:
        primary, standby = engines
        primary.bootstrap()
        primary.start()
        host, port = primary.data_address.split(":")
        with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE TABLE bench (k text PRIMARY KEY)")
        standby.clone(Upstream(primary.name, primary.data_address))
        standby.start()
        _until(lambda: standby.status().streaming)
        for term in range(1, rounds + 1):
            t0 = time.perf_counter()
            standby.promote(term)
            t1 = _until(lambda: _write(standby, f"p{term}") is None)  # noqa: B023 (called at once)
            promote_s.append(t1 - t0)
            tf = time.perf_counter()
            standby.fence("bench")
            fence_s.append(time.perf_counter() - tf)
            standby.unfence()
            _write(primary, f"diverged{term}")           # the old primary diverges
            new = Upstream(standby.name, standby.data_address)
            t2 = time.perf_counter()
            methods.append(primary.rejoin(new, term).value)
            t3 = _until(lambda: primary.status().streaming)  # noqa: B023 (called at once)
            rejoin_s.append(t3 - t2)
            print(f"round {term}: promote->first write {promote_s[-1] * 1000:.0f} ms, "
                  f"fence {fence_s[-1] * 1000:.0f} ms, "
                  f"rejoin({methods[-1]})->streaming {rejoin_s[-1] * 1000:.0f} ms", flush=True)
            primary, standby = standby, primary
    finally:
        for e in engines:
            e.stop()
        shutil.rmtree(base, ignore_errors=True)
    return promote_s, rejoin_s, fence_s, methods


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    wlog.setup("ERROR")     # engine warnings (fence ...) are expected here
    promote_s, rejoin_s, fence_s, _ = run(args.rounds)
    print(f"median over {args.rounds}: promote->first write {statistics.median(promote_s) * 1000:.0f} ms; "
          f"fence {statistics.median(fence_s) * 1000:.0f} ms; "
          f"rejoin->streaming {statistics.median(rejoin_s) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
