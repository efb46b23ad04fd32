"""The real Kubernetes-manifest test under podman: bring deploy/kubernetes/
up (``play.up``), wait for every pod's readiness probe, write through a
HAProxy pod (the endpoints of Service ``walrus-rw``), and in each round
SIGKILL the primary's pod (``podman pod kill``), time kill -> first write
acknowledged through HAProxy at a newer term, recreate the pod as the
StatefulSet controller would (same name, same claim) and wait until it is
Ready and streaming again (``/replica`` 200). Everything is torn down at
the end (``play.down``); the images are kept.
"""
from __future__ import annotations

import pathlib
import statistics
import tempfile
import time
import urllib.error
import urllib.request

from walrus_ha.tools.bench_http import Writer, wait_for
from walrus_ha.tools.podkube import play

AGENT = ("app.kubernetes.io/component", "agent")
HAPROXY = ("app.kubernetes.io/component", "haproxy")


def _pods_with(st: dict, label: tuple[str, str]) -> dict[str, dict]:
    key, value = label
    return {n: p for n, p in st["pods"].items() if p["labels"].get(key) == value}


def http_ok(ip: str, port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=1.0) as r:
            return r.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def primary(agents: dict[str, dict]) -> str | None:
    """The one agent pod whose ``/primary`` answers 200 (HAProxy's check);
    ``agents``: name -> {"ip": its IP now, "ports": ...}."""
    up = [n for n, p in agents.items() if http_ok(p["ip"], p["ports"]["api"], "/primary")]
    return up[0] if len(up) == 1 else None


def kill_round(state: pathlib.Path, agents: dict[str, dict], writer: Writer, timeout_s: float = 120.0) -> dict:
    leader = wait_for(lambda: primary(agents), timeout_s, "one agent answering /primary")
    wait_for(lambda: writer.acks and time.monotonic() - writer.acks[-1][0] < 1.0, timeout_s,
             "writes acknowledged through HAProxy")
    old_term = writer.acks[-1][1]
    killed_at = time.monotonic()
    play.kill(state, leader)
    t, term = wait_for(lambda: writer.first_ack_after(killed_at, old_term), timeout_s,
                       "a write acknowledged at a newer term through HAProxy")
    new_leader = wait_for(lambda: primary({n: p for n, p in agents.items() if n != leader}), timeout_s,
                          "the new primary")
    play.recreate(state, leader)
    play.wait_ready(state, [leader])
    old_ip, agents[leader]["ip"] = agents[leader]["ip"], play.pod_ip(state, leader)
    p = agents[leader]
    wait_for(lambda: http_ok(p["ip"], p["ports"]["api"], "/replica"), 180.0,
             f"{leader} back as a streaming standby (/replica 200)")
    return {"killed": leader, "new_leader": new_leader, "old_term": old_term, "new_term": term,
            "kill_to_write_s": t - killed_at, "ip_before": old_ip, "ip_after": p["ip"]}


def run(rounds: int, state: pathlib.Path | None = None, keep: bool = False,
        progress=lambda _m: None, network: str = "walrus-kube") -> dict:
    """Up, ``rounds`` kill rounds, down (unless ``keep``); the figures."""
    state = state or pathlib.Path(tempfile.mkdtemp(prefix="walrus-podkube-"))
    writer = None
    started = False
    try:
        t0 = time.monotonic()
        st = play.up(state, network)
        started = True
        play.wait_ready(state, list(st["pods"]))
        progress(f"{len(st['pods'])} pods Ready after {time.monotonic() - t0:.1f}s")
        # No kubelet runs the liveness probes here: run each once, a failing one would restart its pod.
        failing = [n for n in st["pods"] if not play.ready(state, n, "liveness")]
        if failing:
            raise RuntimeError(f"liveness probes fail on {', '.join(failing)}")
        agents = {n: {**p, "ip": play.pod_ip(state, n)} for n, p in _pods_with(st, AGENT).items()}
        (hap_name, hap), *_ = _pods_with(st, HAPROXY).items()
        writer = Writer(f"{play.pod_ip(state, hap_name)}:{hap['ports']['rw']}").start()
        wait_for(lambda: writer.acks, 180.0, "a first write acknowledged through HAProxy")
        results = []
        for i in range(rounds):
            r = kill_round(state, agents, writer)
            results.append(r)
            progress(f"round {i + 1}: podman pod kill {r['killed']} -> {r['new_leader']} (term {r['old_term']} -> "
                     f"{r['new_term']}): first write through HAProxy after {r['kill_to_write_s']:.2f}s; "
                     f"{r['killed']} recreated at {r['ip_after']} (was {r['ip_before']}), streaming again")
        acks_before = len(writer.acks)
        wait_for(lambda: len(writer.acks) > acks_before, 30.0, "writes still acknowledged at the end")
        secs = [r["kill_to_write_s"] for r in results]
        return {"rounds": results, "kill_to_write_s": statistics.median(secs),
                "kill_to_write_s_range": [min(secs), max(secs)], "writes": len(writer.acks),
                "write_errors": writer.errors, "dropped": st["dropped"]}
    finally:
        if writer is not None:
            writer.stop()
        if started and not keep:
            progress("down: " + ", ".join(play.down(state)))
