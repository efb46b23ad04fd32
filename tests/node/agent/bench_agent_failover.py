"""Measure the agent's part of a failover with real processes (not a test).

    python tests/node/agent/bench_agent_failover.py [--rounds 5] [--ttl 3]

Each round: a fresh etcd + 3 ``walrus node`` agents (embedded engine);
SIGKILL the primary; wait for the lease to expire; then measure
* promote_ms: the Promote RPC on a standby (acquire_leader + engine promote),
* first_write_ms: from the Promote reply to the first acknowledged write,
* repoint_ms: from the Promote reply until the third node streams from the
  new leader by itself (watch on the leader key, no Follow sent),
and, separately, idle CPU per agent over 5 s. Prints median and min-max.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from agent_procs import ROLE_STANDBY, Agents, wait_for  # noqa: E402
from walrus_ha.common.dcs import Dcs  # noqa: E402
from walrus_ha.protos import node_agent_pb2 as pb  # noqa: E402
from walrus_ha.tools.etcd_server import EtcdServer  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(base: pathlib.Path, ttl: float, measure_cpu: bool) -> dict:
    etcd = EtcdServer(base / "etcd")
    etcd.start()
    group = Agents(base, etcd.endpoint, "bench")
    timing = {"ttl": ttl, "loop_wait": min(1.0, ttl / 10), "retry_timeout": ttl / 4, "safety_margin": ttl / 6}
    try:
        for n in ("a", "b", "c"):
            group.add(n, **timing)
        old = group.wait_primary()
        rest = [a for a in group.all.values() if a is not old]
        for a in rest:
            group.wait_standby_of(a.name, old.name)
        out = {}
        if measure_cpu:
            before = {a.name: cpu_seconds(a.pid) for a in group.all.values()}
            time.sleep(5)
            out["idle_cpu_pct"] = max((cpu_seconds(a.pid) - before[a.name]) / 5 * 100 for a in group.all.values())
        old.kill()
        with Dcs([etcd.endpoint], "bench") as dcs:
            wait_for(lambda: dcs.read_view().leader is None, timeout=ttl + 30, interval=0.02, what="expiry")
        new, other = rest
        t0 = time.perf_counter()
        new.agent.Promote(pb.PromoteRequest(term=2, reason="bench"), timeout=30)
        t1 = time.perf_counter()
        wait_for(lambda: new.put(b"k", b"v", timeout=5).term == 2, interval=0.005, what="first write")
        t2 = time.perf_counter()
        up = f"{new.name}@{new.data_address}"
        wait_for(lambda: (lambda s: s.engine.role == ROLE_STANDBY and s.engine.upstream == up
                          and s.engine.streaming)(other.status()), interval=0.005, what="repoint")
        t3 = time.perf_counter()
        out.update(promote_ms=(t1 - t0) * 1000, first_write_ms=(t2 - t1) * 1000, repoint_ms=(t3 - t1) * 1000)
        return out
    finally:
        group.close()
        etcd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ttl", type=float, default=3.0)
    args = parser.parse_args()
    results = []
    for i in range(args.rounds):
        base = pathlib.Path(tempfile.mkdtemp(prefix="walrus-agent-bench-"))
        try:
            r = one_round(base, args.ttl, measure_cpu=(i == 0))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"round {i + 1}/{args.rounds}: " + " ".join(f"{k}={v:.1f}" for k, v in r.items()), flush=True)
        results.append(r)
    print(f"{'metric':<16} {'median':>9} {'min':>9} {'max':>9}")
    for key in ("promote_ms", "first_write_ms", "repoint_ms", "idle_cpu_pct"):
        vals = [r[key] for r in results if key in r]
        print(f"{key:<16} {statistics.median(vals):>9.1f} {min(vals):>9.1f} {max(vals):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
