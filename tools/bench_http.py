"""``python -m walrus_ha.tools.bench_http [--rounds N]``: a local 3-node
cluster (embedded engine) behind a real HAProxy (``localcluster.haproxy``);
each round SIGKILLs the primary's agent while a client writes through
HAProxy's read-write port, and measures the time from the kill to the first
write acknowledged at a newer term through HAProxy. Meanwhile a sampler asks
every member's HTTP API endpoints (``/metrics`` included) and every
orchestrator's ``/metrics`` in a loop; their latency while failovers run is
printed as p50/p99/max, for all and per kind (probe paths, agent /metrics,
orchestrator /metrics), with the load average before and after and, as
the host's floor, etcd's ``/version`` (a Go server, not in the totals). Prints
median (min-max) over the rounds.

Every process it starts (etcd, agents, orchestrators, haproxy) is stopped by
PID at the end; the directory is removed unless ``--keep``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import grpc

from walrus_ha.tools.benchstats import percentile
from walrus_ha.tools.localcluster import haproxy
from walrus_ha.tools.localcluster.cluster import LocalCluster, free_port
from walrus_ha.tools.localcluster.render import ClusterSpec

PATHS = ("/primary", "/replica", "/read-only", "/health", "/liveness", "/readiness", "/status")
PROBES, AGENT_METRICS, ORCH_METRICS = "probe paths", "agent /metrics", "orchestrator /metrics"
BASELINE = "etcd /version (Go, not walrus: the host's floor)"
# Reconnect at once after HAProxy closes the connection (the default backoff is 1 s or more).
_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                    ("grpc.max_reconnect_backoff_ms", 250)]


class Writer:
    """Puts through ``address`` in a thread; ``acks`` is (monotonic time, term)."""

    def __init__(self, address: str):
        from walrus_ha.protos import store_pb2, store_pb2_grpc
        self._pb = store_pb2
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = store_pb2_grpc.StoreStub(self._channel)
        self.acks: list[tuple[float, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="haproxy-writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                reply = self._stub.Put(self._pb.PutRequest(key=f"hb{i}".encode(), value=b"x"), timeout=1.0)
                self.acks.append((time.monotonic(), reply.term))
            except grpc.RpcError:
                self.errors += 1
                self._stop.wait(0.01)

    def first_ack_after(self, since: float, above_term: int) -> tuple[float, int] | None:
        return next(((t, term) for t, term in list(self.acks) if t >= since and term > above_term), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._channel.close()


def targets(cluster: LocalCluster) -> list[tuple[str, str]]:
    """(kind, URL) of everything the sampler asks: each member's probe paths
    and /metrics, each orchestrator's /metrics."""
    out = [(PROBES, cluster.api_url(n) + p) for n in cluster.node_names() for p in PATHS]
    out += [(AGENT_METRICS, cluster.metrics_url(n)) for n in cluster.node_names()]
    out += [(ORCH_METRICS, cluster.metrics_url(n)) for n in cluster.orchestrator_names() if cluster.metrics_url(n)]
    out += [(BASELINE, f"http://{e}/version") for e in cluster.etcd_endpoints[:1]]
    return out


def _sample(urls: list[tuple[str, str]], stop, out) -> None:
    """The sampler process: ask every URL in turn until ``stop``; put
    ({kind: latencies in ms}, refused count) on ``out``."""
    ms: dict[str, list[float]] = {}
    failures = 0
    parsed = [(kind, urlsplit(url)) for kind, url in urls]
    while not stop.is_set():
        for kind, url in parsed:
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=2)
                conn.request("GET", url.path + (f"?{url.query}" if url.query else ""))
                conn.getresponse().read()
                conn.close()
            except (OSError, http.client.HTTPException):
                failures += 1          # a killed member refuses or cuts: not a latency
                continue
            ms.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
        stop.wait(0.02)
    out.put((ms, failures))


class Sampler:
    """``_sample`` in its own process (so this process's gRPC client threads
    do not add their GIL waits to the figures)."""

    def __init__(self, urls: list[tuple[str, str]]):
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._out = ctx.Queue()
        self._proc = ctx.Process(target=_sample, args=(urls, self._stop, self._out), daemon=True)
        self.ms: dict[str, list[float]] = {}
        self.failures = 0

    def start(self) -> Sampler:
        self._proc.start()
        return self

    def stop(self) -> None:
        if self._proc.pid is None or self._stop.is_set():
            return
        self._stop.set()
        try:
            self.ms, self.failures = self._out.get(timeout=30)
        finally:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()     # by its PID


def start_haproxy(cluster: LocalCluster) -> tuple[haproxy.Haproxy, int, int]:
    """Render, check and start HAProxy for ``cluster``; (proc, rw port, ro port)."""
    rw, ro = free_port(), free_port()
    path = os.path.join(cluster.directory, "conf", "haproxy.cfg")
    with open(path, "w") as f:
        f.write(haproxy.render(haproxy.backends_of(cluster), rw, ro))
    return haproxy.Haproxy(path, os.path.join(cluster.directory, "logs", "haproxy.log")).start(), rw, ro


def wait_for(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


def kill_round(cluster: LocalCluster, writer: Writer, timeout_s: float = 60.0) -> dict:
    """SIGKILL the primary's agent; wait for a write through HAProxy at a newer
    term; restart the killed agent and wait until the cluster is healthy."""
    wait_for(lambda: writer.acks and time.monotonic() - writer.acks[-1][0] < 1.0, timeout_s,
             "writes acknowledged through HAProxy")
    old_term = writer.acks[-1][1]
    leader = cluster.client().get_leader().name
    killed_at = time.monotonic()
    cluster.kill(leader)
    t, term = wait_for(lambda: writer.first_ack_after(killed_at, old_term), timeout_s,
                       "a write acknowledged at a newer term through HAProxy")
    new_leader = cluster.client().get_leader().name
    cluster.start(leader)
    cluster.wait_healthy(120.0)
    return {"killed": leader, "new_leader": new_leader, "old_term": old_term, "new_term": term,
            "kill_to_write_s": t - killed_at}


def server_side(urls: list[str]) -> dict:
    """p50 / p99 upper bounds (histogram buckets, ms) of the time requests
    spent inside the servers (``walrus_http_request_seconds``), summed over
    the processes at ``urls`` that answer: what is not in it is the wait
    before a request is read (scheduling, the GIL) and the client's side."""
    from prometheus_client.parser import text_string_to_metric_families
    buckets: dict[float, float] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                if smp.name == "walrus_http_request_seconds_bucket":
                    le = float(smp.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + smp.value
    total = buckets.get(float("inf"), 0.0)

    def bound(q: float) -> float:
        return next((le * 1000 for le, n in sorted(buckets.items()) if n >= q * total), float("nan"))
    return {"requests": int(total), "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}


def latency(prefix: str, ms: list[float]) -> dict:
    """p50 / p99 / max of sorted latencies (NaN when none)."""
    return {f"{prefix}_p50_ms": percentile(ms, 0.5), f"{prefix}_p99_ms": percentile(ms, 0.99),
            f"{prefix}_max_ms": ms[-1] if ms else float("nan")}


def run_bench(rounds: int, directory: str) -> dict:
    cluster = LocalCluster.create(ClusterSpec(directory=directory, nodes=3))
    proxy = writer = sampler = None
    try:
        cluster.start_all()
        cluster.wait_healthy(120.0)
        proxy, rw, ro = start_haproxy(cluster)
        writer = Writer(f"127.0.0.1:{rw}").start()
        load_before = os.getloadavg()
        sampler = Sampler(targets(cluster)).start()
        results = []
        for i in range(rounds):
            r = kill_round(cluster, writer)
            results.append(r)
            print(f"round {i + 1}: killed {r['killed']} -> {r['new_leader']} (term {r['old_term']} -> "
                  f"{r['new_term']}): first write through HAProxy after {r['kill_to_write_s']:.2f}s", flush=True)
        sampler.stop()
        inside = server_side([cluster.metrics_url(n) for n in (*cluster.node_names(), *cluster.orchestrator_names())])
        ms = sorted(x for kind, xs in sampler.ms.items() if kind != BASELINE for x in xs)
        secs = [r["kill_to_write_s"] for r in results]
        return {"rounds": results, "kill_to_write_s": statistics.median(secs),
                "kill_to_write_s_range": [min(secs), max(secs)], "http_requests": len(ms),
                "http_refused": sampler.failures, **latency("http", ms),
                "http_by_kind": {k: {"requests": len(v), **latency("http", sorted(v))}
                                 for k, v in sorted(sampler.ms.items())},
                "server_side": inside, "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
                "cpus": os.cpu_count(), "haproxy_pid": proxy.pid}
    finally:
        for part in (sampler, writer, proxy):
            if part is not None:
                part.stop()
        cluster.stop_all(timeout_s=10.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m walrus_ha.tools.bench_http", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", help="cluster directory (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the directory (configs, logs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    directory = args.dir or tempfile.mkdtemp(prefix="walrus-bench-http-")
    try:
        out = run_bench(args.rounds, os.path.join(directory, "c"))
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        lo, hi = out["kill_to_write_s_range"]
        print(f"SIGKILL primary -> first write acknowledged through HAProxy: median {out['kill_to_write_s']:.2f}s "
              f"(min {lo:.2f}s, max {hi:.2f}s) over {len(out['rounds'])} rounds")
        print(f"walrus HTTP endpoints during those failovers: {out['http_requests']} requests, "
              f"p50 {out['http_p50_ms']:.2f} ms, p99 {out['http_p99_ms']:.2f} ms, max {out['http_max_ms']:.2f} ms "
              f"({out['http_refused']} refused by the killed member)")
        for kind, k in out["http_by_kind"].items():
            print(f"  {kind}: {k['requests']} requests, p50 {k['http_p50_ms']:.2f} ms, "
                  f"p99 {k['http_p99_ms']:.2f} ms, max {k['http_max_ms']:.2f} ms")
        inside = out["server_side"]
        print(f"  inside the walrus servers (request line read -> answer written; histogram bounds): "
              f"p50 <= {inside['p50_le_ms']:g} ms, p99 <= {inside['p99_le_ms']:g} ms "
              f"over {inside['requests']} requests")
        before, after = out["loadavg_before"], out["loadavg_after"]
        print(f"load average (1/5/15 min) on {out['cpus']} CPUs: before {before[0]:.2f} {before[1]:.2f} "
              f"{before[2]:.2f}, after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
