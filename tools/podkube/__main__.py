"""``python -m walrus_ha.tools.podkube COMMAND`` (``deploy/kubernetes/podman-play.sh``):
deploy/kubernetes/ under ``podman kube play`` (docs/internals.md,
"Kubernetes under podman").

    build                     podman build the images from walrus-base:bookworm
    render [--ip-base 10.89.9.]  print the pods, claims and ConfigMaps podman plays
    up --state DIR            network, claims, every pod; waits until all are Ready
    down --state DIR          pods, volumes, network and DIR removed
    up --sync                 the same with WALRUS_ORCHESTRATOR__SYNCHRONOUS_MODE=true in the
                              orchestrators' env (as a user edits the Deployment)
    kill|delete|start|pause|unpause|isolate|heal POD... --state DIR
                              start = the controller recreating a deleted or killed pod
                              (same name and claims), then Ready (--no-wait: running); isolate/heal =
                              off the network and back (pod IP and DNS aliases kept)
    exec CONTAINER --state DIR -- CMD   podman exec (from inside `run` as well)
    wipe POD... --state DIR   delete the pods, empty their claims, play them again (etcd-wipe)
    wait POD... --state DIR   until their readiness probes pass
    addresses --state DIR     --orchestrators / --etcd arguments for `walrus drill`
    run --state DIR -- CMD    CMD with the pods' DNS names resolvable (walrus drill ...)
    test [--rounds N]         the failover test: up, kill the primary's pod, write through HAProxy, down
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import yaml

from walrus_ha.tools.podkube import play, render

COMMANDS = ("build", "render", "up", "down", "kill", "delete", "start", "pause", "unpause", "isolate", "heal",
            "wipe", "exec", "wait", "addresses", "run", "test")


def _render(args) -> int:
    out = render.render(play.manifests(play.source_root()), (f"{args.ip_base}{i}" for i in range(10, 255)))
    docs = out.configmaps + out.claims + [p.doc for p in out.pods]
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    for p in out.pods:
        print(f"# {p.name} ({p.owner}): ip {p.ip}, aliases {', '.join(p.aliases)}", file=sys.stderr)
    print(f"# dropped: {', '.join(out.dropped)}", file=sys.stderr)
    return 0


def _addresses(state: pathlib.Path) -> str:
    st = play.load(state)
    orch = [f"{n}={p['ip']}:{p['ports']['grpc']}" for n, p in st["pods"].items()
            if p["labels"].get("app.kubernetes.io/component") == "orchestrator"]
    # etcd by its members' DNS names, as the pods reach it (they resolve inside `run`).
    etcd = [f"{p['aliases'][0]}:{p['ports']['client']}" for p in st["pods"].values()
            if p["owner"] == "StatefulSet/walrus-etcd"]
    return f"--orchestrators {','.join(orch)} --etcd {','.join(etcd)}"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m walrus_ha.tools.podkube", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("command", choices=COMMANDS)
    ap.add_argument("args", nargs="*", help="pod names (run: the command, after --)")
    ap.add_argument("--state", default="/tmp/walrus-podkube",
                    help="state directory (default /tmp/walrus-podkube; test: a new temporary one)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ip-base", default="10.89.9.")
    ap.add_argument("--keep", action="store_true", help="test: leave the pods up")
    ap.add_argument("--sync", action="store_true", help="up: orchestrators in synchronous mode")
    ap.add_argument("--no-wait", action="store_true",
                    help="start: return once the pod runs, not Ready (an etcd member is Ready only with a quorum)")
    ap.add_argument("--json", action="store_true")
    return ap


def _up(args, state: pathlib.Path) -> int:
    env = {"Deployment/walrus-orchestrator": {"WALRUS_ORCHESTRATOR__SYNCHRONOUS_MODE": "true"}} if args.sync else {}
    st = play.up(state, env=env)
    play.wait_ready(state, list(st["pods"]))
    print(f"{len(st['pods'])} pods Ready; drill with: {_addresses(state)}")
    return 0


def _test(args) -> int:
    from walrus_ha.tools.podkube import failover  # grpc: only the test needs it
    out = failover.run(args.rounds, keep=args.keep, progress=lambda m: print(m, flush=True))
    if args.json:
        print(json.dumps(out, indent=2))
    lo, hi = out["kill_to_write_s_range"]
    print(f"podman pod kill of the primary -> first write through HAProxy: median {out['kill_to_write_s']:.2f}s "
          f"(min {lo:.2f}s, max {hi:.2f}s) over {len(out['rounds'])} rounds; "
          f"{out['writes']} writes acknowledged, {out['write_errors']} refused/failed")
    return 0


def _exec(state: pathlib.Path, container: list[str], command: list[str]) -> int:
    done = play.podman(["exec", *container[:1], *command], state, check=False)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done.returncode


def _pods(cmd: str, state: pathlib.Path, pods: list[str], wait: bool) -> int:
    """The verbs on pods: start, wipe, wait, pause/unpause, kill, delete, isolate, heal."""
    if cmd == "wipe":
        play.wipe(state, pods)
    for pod in pods:
        if cmd == "start":
            play.recreate(state, pod)
        elif cmd in ("pause", "unpause"):
            play.podman(["pod", cmd, pod], state)
        elif cmd not in ("wait", "wipe"):
            getattr(play, cmd)(state, pod)
    if cmd in ("wait", "wipe") or (cmd == "start" and wait):
        play.wait_ready(state, pods)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = _parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    state, cmd = pathlib.Path(args.state), args.command
    if cmd in ("up", "test"):
        why = play.preflight()
        if why:
            print(f"cannot run: {why}", file=sys.stderr)
            return 2
    simple = {"render": lambda: _render(args), "up": lambda: _up(args, state), "test": lambda: _test(args),
              "build": lambda: play.build(play.source_root()),
              "down": lambda: print("\n".join(play.down(state))),
              "addresses": lambda: print(_addresses(state)),
              "run": lambda: play.run_with_pod_dns(state, command),
              "exec": lambda: _exec(state, args.args, command)}
    if cmd in simple:
        return simple[cmd]() or 0
    return _pods(cmd, state, args.args, wait=not args.no_wait)


if __name__ == "__main__":
    sys.exit(main())
