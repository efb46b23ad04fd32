"""Micro-benchmark of WAL group commit: ``python -m walrus_ha.tools.bench_wal``.

Each of N threads loops ``append`` + ``flush(end)`` (a synchronous local
commit) for a few seconds; prints commits/s and latency percentiles per thread
count. ``--storage`` measures ``Storage.put`` + ``flush`` instead (record
encoding and state apply included). Uses a temporary directory on the given
file system (default: cwd).
"""
from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time

from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.embedded.storage import Storage
from walrus_ha.node.engine.embedded.wal import Wal


def run(threads: int, seconds: float, directory: str, payload_size: int = 100,
        segment_size: int = 16 * 1024 * 1024, storage: bool = False) -> dict:
    """Run one round; returns {threads, commits, commits_per_s, p50_ms, p99_ms}."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="wal-bench-") as tmp:
        if storage:
            st = Storage.open(tmp, EmbeddedConfig(segment_size=segment_size))
            wal = st.wal
            counter = itertools.count()

            def commit() -> None:
                _, end = st.put(b"key%d" % next(counter), payload)
                st.flush(end)
        else:
            wal = Wal.open(os.path.join(tmp, "wal"), segment_size)

            def commit() -> None:
                _, end = wal.append(payload, 1)
                wal.flush(end)
        payload = os.urandom(payload_size)
        latencies: list[list[float]] = [[] for _ in range(threads)]
        stop = time.monotonic() + seconds
        start_gate = threading.Barrier(threads)

        def worker(i: int) -> None:
            lat = latencies[i]
            start_gate.wait()
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                commit()
                lat.append(time.perf_counter() - t0)

        t0 = time.monotonic()
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        elapsed = time.monotonic() - t0
        wal.close()
    allv = sorted(v for lat in latencies for v in lat)
    n = len(allv)
    return {"threads": threads, "commits": n, "commits_per_s": n / elapsed,
            "p50_ms": allv[n // 2] * 1e3 if n else 0.0,
            "p99_ms": allv[min(n - 1, int(n * 0.99))] * 1e3 if n else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--payload", type=int, default=100)
    parser.add_argument("--storage", action="store_true", help="Storage.put + flush instead of raw WAL")
    args = parser.parse_args(argv)
    for n in args.threads:
        r = run(n, args.seconds, args.dir, args.payload, storage=args.storage)
        print(f"threads={r['threads']:3d} commits={r['commits']:7d} "
              f"commits/s={r['commits_per_s']:9.0f} p50={r['p50_ms']:.3f}ms p99={r['p99_ms']:.3f}ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
