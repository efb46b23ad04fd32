"""``walrus bench engine``: synchronous-commit throughput and latency of the
embedded engine, measured with real processes.

It starts a primary and one standby (``walrus engine`` processes on free
loopback ports in a temp dir, ``FIRST 1 (standby)``), then for each commit
level (``local``, ``on``, ``remote_apply``) and client count (1, 32) runs
``--rounds`` rounds of ``--duration`` seconds of commits (``--protocol
unary``: one ``Put`` RPC each; ``stream``: one write at a time on a
per-client ``Store.WriteStream``). Clients are asyncio coroutines (grpc.aio,
one channel each, one write outstanding each: no thread hand-off per commit
in the client), spread over ``--client-procs`` processes. It prints progress on
stderr, a table on stdout (median and min-max across rounds of commits/s, p50
and p99 commit latency, and the standby's replay lag under load), and with
``--json FILE`` writes ``{"results": [...], "setup": {...}}``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from walrus_ha.tools import bench_transport
from walrus_ha.tools.benchstats import cell, percentile, spread

LEVELS = {"off": 1, "local": 2, "remote_write": 3, "on": 4, "remote_apply": 5}
PROTOCOLS = ("unary", "stream")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    p = sub.add_parser("engine", help="embedded engine commit throughput/latency (primary + 1 sync standby)")
    p.add_argument("--json", default="", help="write the results as JSON to this file")
    p.add_argument("--rounds", type=int, default=3, help="rounds per (level, clients) (default 3)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per round (default 5)")
    p.add_argument("--levels", default="local,on,remote_apply", help="comma-separated commit levels")
    p.add_argument("--clients", default="1,32", help="comma-separated concurrent client counts")
    p.add_argument("--client-procs", type=int, default=0,
                   help="client processes (default: 1 for one client, 2 otherwise)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--data-dir", default="", help="where to put the engines' data (default: a temp dir)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="stream",
                   help="stream: each client keeps one Store.WriteStream and sends a write, waits for its ack, "
                        "sends the next (default; ~2x the commits/s of unary at 32 clients here); "
                        "unary: one Put RPC per commit")
    bench_transport.add_parser(sub)


# ------------------------------------------------------------------ client side
async def _aio_clients(address: str, protocol: str, level: int, clients: int, value: bytes, tag: str,
                       start_at: float, end_at: float, lat: list[list[float]], errors: list[int]) -> None:
    """``clients`` clients as coroutines on one event loop, each with its own
    channel and exactly one write outstanding: ``unary`` sends one ``Put`` RPC
    per commit; ``stream`` keeps one ``WriteStream`` (reopened after an error)
    and sends a write, awaits its ack, sends the next."""
    import asyncio

    import grpc

    from walrus_ha.protos import store_pb2, store_pb2_grpc

    async def client(i: int) -> None:
        async with grpc.aio.insecure_channel(address) as ch:
            stub = store_pb2_grpc.StoreStub(ch)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            clock, mine, n, call = time.perf_counter, lat[i], 0, None
            while time.time() < end_at:
                put = store_pb2.PutRequest(key=f"{tag}-{i}-{n % 1000}".encode(), value=value, level=level)
                t0 = clock()
                try:
                    if protocol == "unary":
                        await stub.Put(put, timeout=30)
                    else:
                        if call is None:
                            call = stub.WriteStream()
                        await call.write(store_pb2.WriteRequest(id=n + 1, put=put))
                        reply = await call.read()
                        if reply is grpc.aio.EOF or reply.id != n + 1:
                            raise RuntimeError(f"WriteStream answered {reply!r} to write {n + 1}")
                except (grpc.RpcError, RuntimeError):
                    errors[i] += 1
                    call = None
                    continue
                mine.append(clock() - t0)
                n += 1
            if call is not None:
                await call.done_writing()
    await asyncio.gather(*(client(i) for i in range(clients)))


def _client_proc(address: str, level: int, clients: int, duration: float, value_size: int,
                 tag: str, go, start_at, out: mp.Queue, protocol: str = "stream") -> None:
    """One client process: ``clients`` asyncio clients committing from the
    shared start time (set by the parent once every client process is up)
    for ``duration`` seconds."""
    import asyncio

    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    out.put("ready")
    go.wait()
    start_at = start_at.value
    asyncio.run(_aio_clients(address, protocol, level, clients, b"v" * value_size, tag, start_at,
                             start_at + duration, lat, errors))
    out.put(([x for xs in lat for x in xs], sum(errors)))


# ------------------------------------------------------------------ engines
class _Engine:
    def __init__(self, name: str, data_dir: str, args: list[str], log_dir: str):
        self.name = name
        log = open(os.path.join(log_dir, f"{name}.log"), "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "walrus_ha", "engine", "--name", name,
                                      "--data-dir", data_dir, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        line = self.proc.stdout.readline().decode()
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"engine {name} did not start (see {log_dir}/{name}.log)")
        fields = dict(kv.split("=", 1) for kv in line.split()[2:])
        self.address = fields["listen"]

    def status(self):
        import grpc

        from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc
        with grpc.insecure_channel(self.address) as ch:
            return node_agent_pb2_grpc.NodeAgentStub(ch).GetStatus(
                node_agent_pb2.GetStatusRequest(), timeout=10).engine

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def _lag_sampler(primary: _Engine, stop: threading.Event, samples: list[tuple[int, float]]) -> None:
    while not stop.wait(0.25):
        try:
            st = primary.status()
        except Exception:
            continue
        for s in st.standbys:
            samples.append((s.replay_lag_bytes, s.replay_lag_s))


def _one_round(primary: _Engine, level: str, clients: int, procs: int, args) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    go, start = ctx.Event(), ctx.Value("d", 0.0)
    ps = [ctx.Process(target=_client_proc, args=(primary.address, LEVELS[level], n, args.duration,
                                                 args.value_size, f"p{i}", go, start, out, args.protocol))
          for i, n in enumerate(per) if n]
    for p in ps:
        p.start()
    for _ in ps:
        if out.get(timeout=120) != "ready":
            raise RuntimeError("a client process failed to start")
    start_at = time.time() + 0.3       # let every client thread open its channel
    start.value = start_at
    go.set()
    lag: list[tuple[int, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_lag_sampler, args=(primary, stop, lag), daemon=True)
    time.sleep(max(0.0, start_at - time.time()))
    sampler.start()
    results = [out.get(timeout=args.duration + 120) for _ in ps]
    stop.set()
    for p in ps:
        p.join(30)
    lats = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    return {"commits_per_s": len(lats) / args.duration, "p50_ms": percentile(lats, 0.5) * 1000,
            "p99_ms": percentile(lats, 0.99) * 1000, "errors": errors,
            "replay_lag_bytes": statistics.median([b for b, _ in lag]) if lag else 0,
            "replay_lag_s": statistics.median([s for _, s in lag]) if lag else 0.0}


def _summary(level: str, clients: int, protocol: str, rounds: list[dict]) -> dict:
    return {"level": level, "clients": clients, "protocol": protocol, "rounds": len(rounds),
            **spread(rounds, "commits_per_s", "p50_ms", "p99_ms"),
            "replay_lag_bytes": statistics.median(r["replay_lag_bytes"] for r in rounds),
            "replay_lag_s": statistics.median(r["replay_lag_s"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds), "per_round": rounds}


def _table(results: list[dict]) -> str:
    from walrus_ha.tools.localcluster.table import format_table  # here: the package import is heavy for children
    return format_table(
        ["level", "clients", "protocol", "commits/s (min-max)", "p50 ms (min-max)", "p99 ms (min-max)",
         "replay lag B", "replay lag ms"],
        [[r["level"], r["clients"], r["protocol"], cell(r, "commits_per_s", ".0f"), cell(r, "p50_ms", ".2f"),
          cell(r, "p99_ms", ".2f"), f"{r['replay_lag_bytes']:.0f}", f"{r['replay_lag_s'] * 1000:.2f}"]
         for r in results], rule=False)


def run(args: argparse.Namespace) -> int:
    if args.bench == "transport":
        return bench_transport.run(args)
    levels = [x.strip() for x in args.levels.split(",") if x.strip()]
    bad = [x for x in levels if x not in LEVELS]
    if bad:
        print(f"walrus bench: unknown commit level(s) {bad}; known: {', '.join(LEVELS)}", file=sys.stderr)
        return 2
    try:
        client_counts = [int(x) for x in args.clients.split(",") if x.strip()]
    except ValueError:
        print(f"walrus bench: --clients must be comma-separated integers, got {args.clients!r}", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.duration <= 0:
        print("walrus bench: --rounds must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    own_dir = not args.data_dir
    base = args.data_dir or tempfile.mkdtemp(prefix="walrus-bench-")
    os.makedirs(base, exist_ok=True)
    print(f"bench: data and logs in {base}", file=sys.stderr)
    primary = standby = None
    results = []
    try:
        primary = _Engine("primary", os.path.join(base, "primary"),
                          ["--sync", "FIRST 1 (standby)", "--synchronous-commit", "on"], base)
        standby = _Engine("standby", os.path.join(base, "standby"), ["--upstream", f"primary@{primary.address}"],
                          base)
        deadline = time.monotonic() + 30
        while not primary.status().standbys:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not connect within 30 s")
            time.sleep(0.05)
        print(f"bench: primary {primary.address}, standby {standby.address} (FIRST 1 (standby))", file=sys.stderr)
        for level in levels:
            for clients in client_counts:
                procs = args.client_procs or (1 if clients == 1 else 2)
                rounds = []
                for i in range(args.rounds):
                    r = _one_round(primary, level, clients, procs, args)
                    rounds.append(r)
                    print(f"bench: {level:<12} clients={clients:<3} {args.protocol} round {i + 1}/{args.rounds}: "
                          f"{r['commits_per_s']:.0f} commits/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
                          f"replay lag {r['replay_lag_bytes']:.0f} B / {r['replay_lag_s'] * 1000:.2f} ms"
                          + (f" errors {r['errors']}" if r["errors"] else ""), file=sys.stderr)
                results.append(_summary(level, clients, args.protocol, rounds))
    finally:
        for e in (standby, primary):
            if e is not None:
                e.stop()
    print(_table(results))
    if own_dir:
        shutil.rmtree(base, ignore_errors=True)   # kept only when the run failed
    if args.json:
        setup = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "duration_s": args.duration, "rounds": args.rounds, "value_size": args.value_size,
                 "client_procs": args.client_procs or "1 for 1 client, else 2",
                 "sync_standbys": "FIRST 1 (standby)", "data_dir": base,
                 "protocol": args.protocol, "client": "grpc.aio coroutines, one write outstanding each"}
        with open(args.json, "w") as f:
            json.dump({"results": results, "setup": setup}, f, indent=2)
        print(f"bench: wrote {args.json}", file=sys.stderr)
    return 0
