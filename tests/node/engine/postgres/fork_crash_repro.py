"""Reproduce children of a busy gRPC process dying before exec (a benchmark-style
script, not collected by pytest).

The node agent serves and calls gRPC on many threads and forks PostgreSQL
programs. With gRPC core's fork handlers on (pthread_atfork; grpcio turns
them on unless ``GRPC_ENABLE_FORK_SUPPORT`` says otherwise) a child forked
while other threads are inside gRPC ("Other threads are currently calling
into gRPC, skipping fork() handlers") sometimes dies of SIGSEGV or SIGABRT
before it execs. Children started through vfork (subprocess without a uid
switch and without ``preexec_fn``) run no fork handlers and never died.

Run as root (``--mode user*`` and ``setpriv`` switch to the ``postgres`` OS user)::

    python3 tests/node/engine/postgres/fork_crash_repro.py --mode user -n 5000
    python3 tests/node/engine/postgres/fork_crash_repro.py --mode user -n 5000 --walrus

``--walrus`` imports ``walrus`` before ``grpc``, as the agent does, which turns
the fork handlers off. Prints one line: children, how many a signal killed.
Measured on 2 cores, grpcio 1.85.3, Python 3.11 (``-n 5000``): ``user`` 687
killed without ``--walrus``, 0 with it (or with ``GRPC_ENABLE_FORK_SUPPORT=0``
or ``false`` in the environment).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import queue
import signal
import subprocess
import sys
import threading
from concurrent import futures

MODES = ("plain", "user", "preexec", "user_preexec", "spawner_thread", "setpriv")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=MODES, default="user",
                   help="plain: /bin/true (vfork); user: as postgres (user=, fork); preexec: preexec_fn "
                        "as the postmaster's; user_preexec: both, like Postmaster.start; spawner_thread: "
                        "user_preexec from one long-lived thread (process._Spawner); setpriv: uid switch "
                        "and parent-death signal by setpriv, no preexec_fn (vfork)")
    p.add_argument("-n", type=int, default=2000, help="children to start")
    p.add_argument("--clients", type=int, default=4, help="client threads calling the server")
    p.add_argument("--forkers", type=int, default=2, help="threads starting children")
    p.add_argument("--prog", default="/bin/true")
    p.add_argument("--os-user", default="postgres")
    p.add_argument("--walrus", action="store_true", help="import walrus before grpc, as the agent does")
    return p.parse_args()


def main() -> int:
    a = parse_args()
    if a.walrus:
        import walrus_ha  # noqa: F401  (sets GRPC_ENABLE_FORK_SUPPORT)
    import grpc

    def echo(req, ctx):
        return req

    def stream(reqs, ctx):
        yield from reqs

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Stream": grpc.stream_stream_rpc_method_handler(stream)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def client(i: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            unary, streaming = ch.unary_unary("/t.T/Echo"), ch.stream_stream("/t.T/Stream")
            while not stop.is_set():
                try:
                    unary(b"x" * 64, timeout=5) if i % 2 else list(streaming(iter([b"y"] * 8), timeout=5))
                except grpc.RpcError:
                    pass

    pw = pwd.getpwnam(a.os_user)
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def setup() -> None:            # what process._child_setup does
        libc.prctl(1, signal.SIGQUIT, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        os.setpgrp()

    def command(mode: str) -> tuple[list[str], dict]:
        kw: dict = dict(env={"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir}, cwd="/",
                        stdin=subprocess.DEVNULL, capture_output=True)
        if mode in ("user", "user_preexec", "spawner_thread"):
            kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        if mode in ("preexec", "user_preexec", "spawner_thread"):
            kw["preexec_fn"] = setup
        if mode == "setpriv":
            kw["process_group"] = 0
            return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                    "--pdeathsig", "QUIT", "--", a.prog], kw
        return [a.prog], kw

    jobs: queue.Queue = queue.Queue()

    def spawner() -> None:
        while True:
            fn, fut = jobs.get()
            fut.set_result(fn())

    threading.Thread(target=spawner, daemon=True).start()
    results: dict = {}
    lock = threading.Lock()

    def forker(count: int) -> None:
        for _ in range(count):
            argv, kw = command(a.mode)
            if a.mode == "spawner_thread":
                fut: futures.Future = futures.Future()
                jobs.put((lambda: subprocess.run(argv, **kw), fut))
                code = fut.result().returncode
            else:
                code = subprocess.run(argv, **kw).returncode
            key = f"signal {-code}" if code < 0 else f"exit {code}"
            with lock:
                results[key] = results.get(key, 0) + 1

    for i in range(a.clients):
        threading.Thread(target=client, args=(i,), daemon=True).start()
    threads = [threading.Thread(target=forker, args=(a.n // a.forkers,)) for _ in range(a.forkers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    killed = sum(v for k, v in results.items() if k.startswith("signal"))
    print(f"mode={a.mode} GRPC_ENABLE_FORK_SUPPORT={os.environ.get('GRPC_ENABLE_FORK_SUPPORT', 'unset')} "
          f"children={sum(results.values())} killed_by_signal={killed} {dict(sorted(results.items()))}",
          flush=True)
    server.stop(0)
    os._exit(0)                     # do not wait for the client threads


if __name__ == "__main__":
    sys.exit(main())
