"""The one entry point, ``walrus``. Each subcommand lives in its own module
and registers itself through ``COMMANDS``; this file only dispatches and maps
the project's errors to exit codes and one clear line on stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

import walrus_ha
from walrus_ha.common import log as wlog
from walrus_ha.common.errors import WalrusError
from walrus_ha.node.agent import cli as node_cli
from walrus_ha.node.engine.embedded import cli as engine_cli
from walrus_ha.orchestrator import cli as orchestrator_cli
from walrus_ha.tools import bench, ctl, demo
from walrus_ha.tools.drill import cli as drill_cli
from walrus_ha.tools.localcluster import cli as cluster_cli

# subcommand -> (module, help). Each module has ``add_arguments(parser)`` and
# ``run(args) -> int``. The imports are plain ones at the top so that the
# dependency of the command line on every part shows in the import graph.
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "node": (node_cli, "run a node agent"),
    "orchestrator": (orchestrator_cli, "run an orchestrator"),
    "engine": (engine_cli, "run a standalone embedded engine server"),
    "cluster": (cluster_cli, "start/stop/inspect a local cluster of real processes"),
    "ctl": (ctl, "query and steer a running cluster"),
    "drill": (drill_cli, "chaos failover drills that measure RTO and RPO"),
    "bench": (bench, "benchmarks (engine, transport)"),
    "demo": (demo, "local cluster + workload + failover demo"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walrus", description="walrus high-availability orchestrator")
    parser.add_argument("--version", action="version", version=f"walrus {walrus_ha.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    wlog.setup_tool()
    try:
        code = int(args._module.run(args) or 0)
        sys.stdout.flush()       # a closed pipe shows here, not at interpreter exit
        return code
    except WalrusError as exc:
        print(f"walrus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """stdout's reader went away (``walrus ctl list | head -1``): no traceback.
    Point stdout at /dev/null so the interpreter's final flush cannot fail
    again, and exit like a process ended by SIGPIPE (128 + 13)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
