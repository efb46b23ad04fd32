"""``python -m walrus_ha.tools.compose_failover [--rounds N]`` (also
``deploy/test-compose.sh``): the real container test. Builds the images of
``deploy/compose/compose.yaml`` (with ``--engine postgres`` also
``compose.postgres.yaml``: PostgreSQL members with scram authentication,
password files made for the run in a private temporary directory; writes go
through HAProxy with psycopg as the superuser) (from the local base image, see
``deploy/image/make-base.sh``), brings the cluster up under its own project
name on free loopback ports, writes through HAProxy's read-write port, and in
each round ``docker kill``s the primary's container (SIGKILL) and measures the
time from just before ``docker kill`` (container id looked up beforehand) to
the first write acknowledged at a newer term through HAProxy (so it includes
the CLI's own latency and HAProxy's checks). The killed container is started again and must
rejoin as a streaming standby before the next round. Prints median
(min-max). Everything is torn down at the end with ``down -v`` (containers,
network, named volumes); the images are kept for the next run.

``preflight`` says why the test cannot run here (no runtime, no compose, no
base image); the pytest marker ``containers`` skips with that reason.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from walrus_ha.tools.bench_http import Writer, wait_for
from walrus_ha.tools.localcluster.cluster import free_port

BASE_IMAGE = "walrus-base:bookworm"
NODES = ("n1", "n2", "n3")


def _compose_file(name: str = "compose.yaml") -> str:
    """deploy/compose/NAME of a source checkout (the wheel has no deploy/)."""
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    for root in (here, os.getcwd()):
        path = os.path.join(root, "deploy", "compose", name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"deploy/compose/{name} not found: run from a source checkout")


def make_secrets() -> tuple[str, str]:
    """A private directory (0700) with fresh ``superuser_password`` and
    ``replication_password`` files (0644: compose bind-mounts them with the
    host's owner and mode, and the container's postgres user reads them);
    returns (directory, superuser password)."""
    directory = tempfile.mkdtemp(prefix="walrus-compose-secrets-")
    passwords = {"superuser_password": secrets.token_hex(16), "replication_password": secrets.token_hex(16)}
    for name, value in passwords.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o644)
    return directory, passwords["superuser_password"]


def compose_command(runtime: str) -> list[str] | None:
    """The compose CLI for ``runtime``: Debian's docker-compose 1.29, the
    docker compose plugin, or podman-compose; None when there is none."""
    if runtime == "podman":
        return ["podman-compose"] if shutil.which("podman-compose") else None
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    ok = subprocess.run([runtime, "compose", "version"], capture_output=True).returncode == 0
    return [runtime, "compose"] if ok else None


def preflight(runtime: str = "docker", base: str = BASE_IMAGE) -> str | None:
    """None when the test can run here, else why not."""
    if shutil.which(runtime) is None:
        return f"no container runtime ({runtime} is not installed)"
    if subprocess.run([runtime, "info"], capture_output=True).returncode != 0:
        return f"{runtime} cannot reach its daemon (start dockerd, or use podman)"
    if compose_command(runtime) is None:
        return "no compose CLI (apt-get install docker-compose)"
    if subprocess.run([runtime, "image", "inspect", base], capture_output=True).returncode != 0:
        return f"no base image {base} (make it with deploy/image/make-base.sh)"
    return None


class ComposeCluster:
    """The compose cluster under project ``project``, on free loopback ports;
    ``engine`` postgres adds compose.postgres.yaml and its password files."""

    def __init__(self, runtime: str, project: str, base: str = BASE_IMAGE, engine: str = "embedded"):
        self.runtime, self.engine = runtime, engine
        files = ["-f", _compose_file()]
        self.secrets_dir, self.password = "", ""
        if engine == "postgres":
            files += ["-f", _compose_file("compose.postgres.yaml")]
            self.secrets_dir, self.password = make_secrets()
        self.cmd = (compose_command(runtime) or []) + ["-p", project] + files
        self.rw_port, self.ro_port, self.stats_port = free_port(), free_port(), free_port()
        self.env = dict(os.environ, WALRUS_BASE=base, WALRUS_RW_PORT=str(self.rw_port),
                        WALRUS_RO_PORT=str(self.ro_port), WALRUS_STATS_PORT=str(self.stats_port),
                        WALRUS_O1_PORT=str(free_port()), WALRUS_O2_PORT=str(free_port()),
                        WALRUS_PG_SECRETS=self.secrets_dir or "./secrets")

    def writer(self):
        """A started writer through HAProxy's read-write port."""
        address = f"127.0.0.1:{self.rw_port}"
        return (PgHaproxyWriter(address, self.password) if self.engine == "postgres" else Writer(address)).start()

    def remove_secrets(self) -> None:
        if self.secrets_dir:
            shutil.rmtree(self.secrets_dir, ignore_errors=True)

    def compose(self, *args: str, timeout_s: float = 600.0) -> str:
        out = subprocess.run(self.cmd + list(args), env=self.env, capture_output=True, text=True,
                             timeout=timeout_s)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(self.cmd + list(args))} failed: {out.stderr.strip()[-2000:]}")
        return out.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def servers_up(self, backend: str) -> set[str]:
        """The servers HAProxy has UP in ``backend`` (walrus_rw / walrus_ro), from its stats CSV."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=2) as r:
                text = r.read().decode().lstrip("# ")
        except OSError:
            return set()
        return {row["svname"] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == backend and row["svname"] in NODES and row["status"].startswith("UP")}

    def primary(self) -> str | None:
        up = self.servers_up("walrus_rw")
        return next(iter(up)) if len(up) == 1 else None

    def kill(self, container: str) -> None:
        """SIGKILL ``container`` (an id from ``container``: looked up first,
        since the compose CLI takes a second or more to answer)."""
        subprocess.run([self.runtime, "kill", "--signal", "KILL", container], check=True, capture_output=True)

    def start(self, service: str) -> None:
        self.compose("start", service)


class PgHaproxyWriter(Writer):
    """``bench_http.Writer``'s interface over PostgreSQL (psycopg, as the
    superuser with its password): ``acks`` is (monotonic time, the timeline
    that answered), a new one per promotion, as the embedded term is."""

    def __init__(self, address: str, password: str):
        from walrus_ha.tools.drill.pg_backend import PgWriter
        self._pg = PgWriter(address, password=password, connect_timeout_s=1, statement_timeout_ms=1000)
        self.acks: list[tuple[float, int]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="haproxy-pg-writer", daemon=True)

    def _run(self) -> None:
        import psycopg
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                timeline = self._pg.write(f"hb{os.getpid()}-{i}", "x")
                self.acks.append((time.monotonic(), timeline))
            except psycopg.Error:
                self.errors += 1
                self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pg.close()


def kill_round(cluster: ComposeCluster, writer: Writer, timeout_s: float = 120.0) -> dict:
    """docker kill the primary's container; wait for a write at a newer term
    through HAProxy; start it again and wait until it streams as a standby."""
    leader = wait_for(cluster.primary, timeout_s, "one primary UP in HAProxy's read-write backend")
    wait_for(lambda: writer.acks and time.monotonic() - writer.acks[-1][0] < 1.0, timeout_s,
             "writes acknowledged through HAProxy")
    old_term = writer.acks[-1][1]
    container = cluster.container(leader)
    killed_at = time.monotonic()
    cluster.kill(container)
    t, term = wait_for(lambda: writer.first_ack_after(killed_at, old_term), timeout_s,
                       "a write acknowledged at a newer term through HAProxy")
    new_leader = wait_for(cluster.primary, timeout_s, "the new primary UP in HAProxy")
    cluster.start(leader)
    wait_for(lambda: leader in cluster.servers_up("walrus_ro"), 180.0,
             f"{leader} back as a streaming standby (UP in walrus_ro)")
    return {"killed": leader, "new_leader": new_leader, "old_term": old_term, "new_term": term,
            "kill_to_write_s": t - killed_at}


def run(rounds: int, runtime: str = "docker", project: str = "walrus-ctest", build: bool = True,
        keep: bool = False, engine: str = "embedded") -> dict:
    cluster = ComposeCluster(runtime, project, engine=engine)
    writer = None
    try:
        if build:
            cluster.compose("build", timeout_s=1800.0)
        cluster.compose("up", "-d")
        writer = cluster.writer()
        wait_for(lambda: writer.acks, 180.0, "a first write acknowledged through HAProxy")
        results = []
        for i in range(rounds):
            r = kill_round(cluster, writer)
            results.append(r)
            print(f"round {i + 1}: docker kill {r['killed']} -> {r['new_leader']} (term {r['old_term']} -> "
                  f"{r['new_term']}): first write through HAProxy after {r['kill_to_write_s']:.2f}s", flush=True)
        acks_before = len(writer.acks)
        wait_for(lambda: len(writer.acks) > acks_before, 30.0, "writes still acknowledged at the end")
        secs = [r["kill_to_write_s"] for r in results]
        return {"engine": engine, "rounds": results, "kill_to_write_s": statistics.median(secs),
                "kill_to_write_s_range": [min(secs), max(secs)], "writes": len(writer.acks),
                "write_errors": writer.errors}
    finally:
        if writer is not None:
            writer.stop()
        if not keep:
            cluster.compose("down", "-v", "--remove-orphans", "--timeout", "10")
            cluster.remove_secrets()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m walrus_ha.tools.compose_failover",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", default="docker", help="docker or podman")
    ap.add_argument("--engine", choices=("embedded", "postgres"), default="embedded",
                    help="postgres: compose.postgres.yaml (scram auth), writes via psycopg through HAProxy")
    ap.add_argument("--project", default="walrus-ctest", help="compose project name")
    ap.add_argument("--no-build", action="store_true", help="use the images already built")
    ap.add_argument("--keep", action="store_true", help="leave the cluster up (no down -v)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    why = preflight(args.runtime)
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    out = run(args.rounds, args.runtime, args.project, build=not args.no_build, keep=args.keep, engine=args.engine)
    if args.json:
        print(json.dumps(out, indent=2))
    lo, hi = out["kill_to_write_s_range"]
    print(f"[{out['engine']}] docker kill of the primary -> first write through HAProxy: "
          f"median {out['kill_to_write_s']:.2f}s "
          f"(min {lo:.2f}s, max {hi:.2f}s) over {len(out['rounds'])} rounds; "
          f"{out['writes']} writes acknowledged, {out['write_errors']} refused/failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
