"""Benchmark (not a test): time from losing the primary to the first write
acknowledged by the new primary, with real processes (etcd, 3 ``walrus
node`` agents on the embedded engine, 1 ``walrus orchestrator``).

    python tests/orchestrator/bench_orch_failover.py --runs 5            # kill -9 (fast path)
    python tests/orchestrator/bench_orch_failover.py --runs 3 --freeze   # SIGSTOP (waits for the lease)

Each run kills (or freezes) the current primary, writes to the other agents
until one acknowledges, then brings the old primary back as a standby.
A WatchLeader subscriber also records how long after the new leader key was
written (its ``since``) the orchestrator told it. Prints every run and the
medians. Everything runs on free loopback ports in a
temporary directory and is stopped by PID at the end.
"""
from __future__ import annotations

import argparse
import queue
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orch_procs import AGENT_TIMING, Procs, wait_for  # noqa: E402
from walrus_ha.protos import cluster_pb2, store_pb2  # noqa: E402
from walrus_ha.tools.etcd_server import EtcdServer  # noqa: E402


def first_ack(agents, deadline_s: float = 60.0) -> tuple[float, str]:
    """Write to the given agents in turn until one acknowledges; returns (time, name)."""
    deadline = time.monotonic() + deadline_s
    i = 0
    while time.monotonic() < deadline:
        for a in agents:
            try:
                a.put(f"bench{i}".encode(), b"v", timeout=0.2, level=store_pb2.COMMIT_LOCAL)
                return time.monotonic(), a.name
            except grpc.RpcError:
                i += 1
        time.sleep(0.002)
    raise TimeoutError("no new primary acknowledged a write")


def subscribe(orch) -> queue.Queue:
    """(wall time received, Leader) for every WatchLeader message."""
    out: queue.Queue = queue.Queue()

    def run():
        try:
            for msg in orch.cluster.WatchLeader(cluster_pb2.WatchLeaderRequest()):
                out.put((time.time(), msg))
        except grpc.RpcError:
            pass
    threading.Thread(target=run, daemon=True).start()
    return out


def notify_delay(leaders: queue.Queue, name: str, timeout: float = 30.0) -> float:
    """Seconds between the new leader key's creation and its WatchLeader message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received, msg = leaders.get(timeout=timeout)
        if msg.present and msg.name == name:
            return received - msg.since
    raise TimeoutError("WatchLeader never reported the new leader")


def one_run(procs: Procs, freeze: bool) -> tuple[float, str, str]:
    primary, _ = procs.cluster3()
    time.sleep(1.0)                      # steady state: the orchestrator has seen everyone
    others = [a for a in procs.agents.values() if a is not primary]
    t0 = time.monotonic()
    if freeze:
        primary.signal(signal.SIGSTOP)
    else:
        primary.kill()
    t1, name = first_ack(others)
    if freeze:
        primary.signal(signal.SIGCONT)
    else:
        primary.start()
    procs.standby_of(primary.name, name, timeout=60)
    return t1 - t0, primary.name, name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--freeze", action="store_true", help="SIGSTOP the primary instead of SIGKILL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="walrus-bench-") as tmp:
        base = Path(tmp)
        etcd = EtcdServer(base / "etcd")
        etcd.start()
        procs = Procs(base, etcd.endpoint, "bench")
        try:
            procs.cluster3()
            orch = procs.orchestrator("o1")
            wait_for(lambda: orch.leader().present, what="orchestrator up")
            leaders = subscribe(orch)
            times, delays = [], []
            for i in range(args.runs):
                while not leaders.empty():
                    leaders.get_nowait()
                dt, old, new = one_run(procs, args.freeze)
                times.append(dt)
                delays.append(notify_delay(leaders, new))
                print(f"run {i + 1}: {old} -> {new}: first write acknowledged after {dt * 1000:.0f} ms; "
                      f"WatchLeader told {delays[-1] * 1000:.0f} ms after the leader key was written",
                      flush=True)
            mode = "SIGSTOP (lease expiry)" if args.freeze else "kill -9 (fast path)"
            print(f"{mode}: median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms over {len(times)} runs "
                  f"(agent ttl {AGENT_TIMING['ttl']:g} s); WatchLeader delay median "
                  f"{statistics.median(delays) * 1000:.0f} ms")
        finally:
            procs.close()
            etcd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
