"""``walrus bench transport``: the floor under ``walrus bench engine``'s
one-client ``on`` latency on this machine right now, with no engine code.

A commit at ``on`` with one client is one round trip of four one-way stream
messages and two fdatasyncs (before the engine shipped WAL ahead of its
flush, in this order; the ``ship-ahead`` variant below is today's)::

    client --(150 B msg)--> P   P: pwrite + fdatasync
    P --(msg)--> S              S: pwrite + fdatasync
    S --(~40 B feedback)--> P   P --(reply)--> client

This command runs exactly that pattern over bare grpc.aio streams (raw-bytes
methods served through ``grpc.method_handlers_generic_handler``, no protobuf,
no WAL, no locks), one round trip outstanding at a time, in three ``spawn``
processes: P (a grpc.aio server on 127.0.0.1), S (a grpc.aio client holding
the standby stream) and the client. P is built like the engine: the client
stream's handler writes + fdatasyncs, hands the message to the standby
stream's response generator through an ``asyncio.Queue`` and awaits a future
that the standby stream's reader task resolves when the feedback arrives.
P and S each write into their own 16 MiB file (zero-filled and fsynced
first, like a WAL segment) at increasing offsets, wrapping at the end, with
the write and the fdatasync done inline on the event loop.

Variants: ``fsync`` (as above), ``ship-ahead`` (P forwards the message to S
first and then writes + fdatasyncs, so its fsync overlaps S's: what the
engine does for a lone commit since it ships WAL ahead of its flush; the
floor under ``on``/1 now) and ``no-fsync`` (no pwrite/fdatasync: gRPC and
asyncio hops only). P and S are started once per variant and reused for
all its rounds; each round runs a fresh client process (new channel, 0.3 s
of untimed warm-up, then ``--duration`` seconds timed with
``time.perf_counter``).

Why: this shared 2-core VM's speed drifts by +-25% within an hour, so an
engine number alone cannot say whether the engine or the host changed. Run
this next to ``walrus bench engine --levels on --clients 1``: the gap between
the two is engine overhead; a move in both is the host.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import struct
import sys
import tempfile
import time

from walrus_ha.tools.benchstats import cell, percentile, spread

VARIANTS = ("fsync", "ship-ahead", "no-fsync")
FILE_SIZE = 16 * 1024 * 1024
MSG_SIZE = 150
FEEDBACK_SIZE = 40
WARMUP_S = 0.3
SERVICE = "walrus.bench.Transport"
CLIENT_METHOD = f"/{SERVICE}/Client"
STANDBY_METHOD = f"/{SERVICE}/Standby"
HELLO = b"hello"


def add_parser(sub) -> None:
    """Add ``transport`` to the ``walrus bench`` subparsers."""
    p = sub.add_parser("transport", help="floor under 'bench engine' on/1: bare grpc.aio stream hops + 2 fdatasyncs")
    p.add_argument("--variants", default="fsync,ship-ahead,no-fsync",
                   help="comma-separated: fsync (pwrite+fdatasync on P, then S), ship-ahead (P forwards "
                        "first, then fsyncs, overlapping S), no-fsync (default: all three)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per variant (default 3)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per round (default 3)")
    p.add_argument("--json", default="", help="write the results as JSON to this file")
    p.add_argument("--data-dir", default="", help="where P and S put their files (default: a temp dir, removed)")


# ------------------------------------------------------------------ children
def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent stops us by PID.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _exit_with_parent() -> None:
    """Safety net for P and S, which otherwise run until stopped: exit if the
    parent died without stopping us (SIGKILL). One check a second."""
    import asyncio
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


class _File:
    """A zero-filled, fsynced file written at increasing offsets (wrapping)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        zeros = bytes(1024 * 1024)
        for off in range(0, FILE_SIZE, len(zeros)):
            os.pwrite(self.fd, zeros, off)
        os.fsync(self.fd)
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.off = 0

    def write_sync(self, data: bytes) -> None:
        if self.off + len(data) > FILE_SIZE:
            self.off = 0
        os.pwrite(self.fd, data, self.off)
        os.fdatasync(self.fd)
        self.off += len(data)


def _primary_proc(path: str, variant: str, out: mp.Queue) -> None:
    """P: serve the client and standby streams on 127.0.0.1:0; report
    ``("port", n)`` once listening and ``("standby", None)`` once S is in."""
    _ignore_sigint()
    import asyncio

    async def main() -> None:
        import grpc

        f = _File(path) if variant != "no-fsync" else None
        ship_ahead = variant == "ship-ahead"
        to_standby: asyncio.Queue[bytes] = asyncio.Queue()
        pending: list[asyncio.Future] = []        # one outstanding at a time, but keep it general
        standby_in = asyncio.Event()

        async def read_feedback(request_iterator) -> None:
            try:
                async for fb in request_iterator:
                    if fb == HELLO:
                        standby_in.set()
                        out.put(("standby", None))
                        continue
                    fut = pending.pop(0)
                    if not fut.done():
                        fut.set_result(fb)
            finally:
                for fut in pending:
                    if not fut.done():
                        fut.set_exception(RuntimeError("the standby stream ended"))
                pending.clear()

        async def standby_stream(request_iterator, context):
            reader = asyncio.get_running_loop().create_task(read_feedback(request_iterator))
            try:
                while True:
                    yield await to_standby.get()
            finally:
                reader.cancel()

        async def client_stream(request_iterator, context):
            await standby_in.wait()
            loop = asyncio.get_running_loop()
            async for msg in request_iterator:
                fut = loop.create_future()
                pending.append(fut)
                if ship_ahead:                      # like the engine's lone commit: ship, then fsync
                    to_standby.put_nowait(msg)
                    await asyncio.sleep(0)          # the standby stream sends it first
                if f is not None:
                    f.write_sync(msg)
                if not ship_ahead:
                    to_standby.put_nowait(msg)
                fb = await fut
                yield msg[:8] + fb[:8]              # reply: the client's sequence number + S's position

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            # no (de)serializers: the methods carry raw bytes as they are
            "Client": grpc.stream_stream_rpc_method_handler(client_stream),
            "Standby": grpc.stream_stream_rpc_method_handler(standby_stream),
        }),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        out.put(("port", port))
        watchdog = asyncio.get_running_loop().create_task(_exit_with_parent())
        await server.wait_for_termination()
        watchdog.cancel()

    asyncio.run(main())


def _standby_proc(address: str, path: str, fsync: bool) -> None:
    """S: open the standby stream to P, say hello, then answer every message
    with a feedback after its write + fdatasync."""
    _ignore_sigint()
    import asyncio

    async def main() -> None:
        import grpc

        f = _File(path) if fsync else None
        watchdog = asyncio.get_running_loop().create_task(_exit_with_parent())
        try:
            async with grpc.aio.insecure_channel(address) as ch:
                call = ch.stream_stream(STANDBY_METHOD)()
                await call.write(HELLO)
                n = 0
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        return
                    if f is not None:
                        f.write_sync(msg)
                    n += 1
                    # write / flush / apply positions, a count and a timestamp: ~ the engine's Feedback
                    pos = f.off if f is not None else n * len(msg)
                    await call.write(struct.pack("<QQQQd", pos, pos, pos, n, time.time()))
        finally:
            watchdog.cancel()

    asyncio.run(main())


def _client_proc(address: str, duration: float, out: mp.Queue) -> None:
    """The client: one channel, one stream, one round trip outstanding;
    ``WARMUP_S`` untimed, then ``duration`` seconds timed. Reports
    ``("ok", latencies_s, elapsed_s)`` or ``("error", text)``."""
    _ignore_sigint()
    import asyncio

    async def main() -> tuple[list[float], float]:
        import grpc

        lat: list[float] = []
        pad = b"x" * (MSG_SIZE - 8)
        clock = time.perf_counter
        async with grpc.aio.insecure_channel(address) as ch:
            call = ch.stream_stream(CLIENT_METHOD)()
            n = 0
            start = clock()
            warm_end = start + WARMUP_S
            end = warm_end + duration
            timed_from = None
            while True:
                t0 = clock()
                if t0 >= end:
                    break
                if timed_from is None and t0 >= warm_end:
                    timed_from = t0
                n += 1
                seq = struct.pack("<Q", n)
                await call.write(seq + pad)
                reply = await call.read()
                if reply is grpc.aio.EOF or reply[:8] != seq:
                    raise RuntimeError(f"round trip {n}: P answered {reply!r}")
                if timed_from is not None:
                    lat.append(clock() - t0)
            elapsed = clock() - (timed_from if timed_from is not None else end)
            await call.done_writing()
            return lat, elapsed

    try:
        lat, elapsed = asyncio.run(main())
    except Exception as exc:   # reported to the parent, which fails the run
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    out.put(("ok", lat, elapsed))


# ------------------------------------------------------------------ parent
def _get(q: mp.Queue, procs: list, timeout: float, what: str):
    """``q.get`` that fails fast if one of ``procs`` has died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode is not None]
        if dead:
            try:
                return q.get(timeout=1.0)   # it may have reported just before exiting
            except queue.Empty:
                p = dead[0]
                raise RuntimeError(
                    f"{p.name} (pid {p.pid}) exited with code {p.exitcode} while waiting for {what}") from None
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(procs: list) -> None:
    """Stop our children by PID: SIGTERM, wait, SIGKILL if needed."""
    for p in procs:
        if p.pid is not None and p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is None:
            continue
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)


def _run_variant(variant: str, base: str, args: argparse.Namespace) -> list[dict]:
    """Start P and S for ``variant``, run ``args.rounds`` client rounds
    against them, stop them (always). Returns one dict per round."""
    ctx = mp.get_context("spawn")
    fsync = variant != "no-fsync"
    ppath, spath = os.path.join(base, "primary.wal"), os.path.join(base, "standby.wal")
    pq, cq = ctx.Queue(), ctx.Queue()
    procs: list = []
    rounds = []
    try:
        primary = ctx.Process(target=_primary_proc, args=(ppath, variant, pq), name="bench-transport-P", daemon=True)
        procs.append(primary)
        primary.start()
        kind, port = _get(pq, procs, 60, "P to listen")
        if kind != "port":
            raise RuntimeError(f"P reported {kind!r} before its port")
        address = f"127.0.0.1:{port}"
        standby = ctx.Process(target=_standby_proc, args=(address, spath, fsync), name="bench-transport-S",
                              daemon=True)
        procs.append(standby)
        standby.start()
        kind, _ = _get(pq, procs, 60, "S to open the standby stream")
        if kind != "standby":
            raise RuntimeError(f"P reported {kind!r} instead of the standby stream")
        for i in range(args.rounds):
            client = ctx.Process(target=_client_proc, args=(address, args.duration, cq),
                                 name="bench-transport-client", daemon=True)
            procs.append(client)
            client.start()
            res = _get(cq, [primary, standby, client], args.duration + 60, f"the client (round {i + 1})")
            client.join(10)
            if res[0] != "ok":
                raise RuntimeError(f"the client failed in round {i + 1}: {res[1]}")
            lat, elapsed = sorted(res[1]), res[2]
            r = {"round_trips": len(lat), "round_trips_per_s": len(lat) / elapsed if elapsed > 0 else 0.0,
                 "p50_ms": percentile(lat, 0.5) * 1000, "p99_ms": percentile(lat, 0.99) * 1000}
            rounds.append(r)
            print(f"bench: transport {variant} round {i + 1}/{args.rounds}: {r['round_trips_per_s']:.0f} round trips/s "
                  f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms", file=sys.stderr)
    finally:
        _stop(procs)
        for path in (ppath, spath):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return rounds


def _summary(variant: str, rounds: list[dict]) -> dict:
    return {"variant": variant, "rounds": len(rounds),
            **spread(rounds, "round_trips_per_s", "p50_ms", "p99_ms"), "per_round": rounds}


def _table(results: list[dict]) -> str:
    from walrus_ha.tools.localcluster.table import format_table  # here: the package import is heavy for children
    return format_table(["variant", "round trips/s (min-max)", "p50 ms (min-max)", "p99 ms (min-max)"],
                        [[r["variant"], cell(r, "round_trips_per_s", ".0f"), cell(r, "p50_ms", ".2f"),
                          cell(r, "p99_ms", ".2f")] for r in results], rule=False)


def run(args: argparse.Namespace) -> int:
    variants = [x.strip() for x in args.variants.split(",") if x.strip()]
    bad = [x for x in variants if x not in VARIANTS]
    if bad or not variants:
        print(f"walrus bench transport: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.duration <= 0:
        print("walrus bench transport: --rounds must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    own_dir = not args.data_dir
    base = args.data_dir or tempfile.mkdtemp(prefix="walrus-bench-transport-")
    results = []

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)     # unwind through the finally blocks that stop the children
    old_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        os.makedirs(base, exist_ok=True)
        print(f"bench: transport files in {base} (P and S reused across a variant's rounds, fresh client each round)",
              file=sys.stderr)
        for variant in variants:
            results.append(_summary(variant, _run_variant(variant, base, args)))
    except RuntimeError as exc:
        print(f"walrus bench transport: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_sigterm)
        if own_dir:
            shutil.rmtree(base, ignore_errors=True)
    print(_table(results))
    if args.json:
        import grpc
        setup = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "grpcio": grpc.__version__, "GRPC_EXPERIMENTS": os.environ.get("GRPC_EXPERIMENTS"),
                 "duration_s": args.duration, "rounds": args.rounds, "variants": variants,
                 "msg_bytes": MSG_SIZE, "feedback_bytes": FEEDBACK_SIZE, "file_bytes": FILE_SIZE,
                 "warmup_s": WARMUP_S, "data_dir": base if not own_dir else "(temp dir, removed)",
                 "processes": "P and S once per variant, a fresh client process per round (spawn)",
                 "pattern": "client -> P (pwrite+fdatasync) -> S (pwrite+fdatasync) -> P -> client, "
                            "one round trip outstanding, raw-bytes grpc.aio bidi streams"}
        with open(args.json, "w") as f:
            json.dump({"results": results, "setup": setup}, f, indent=2)
        print(f"bench: wrote {args.json}", file=sys.stderr)
    return 0
