"""The one entry point, ``walrus``. Each subcommand lives in its own module
and registers itself through ``COMMANDS``; this file only dispatches and maps
the project's errors to exit codes and one clear line on stderr.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from walrus.errors import WalrusError

# subcommand -> (module, help). Each module has ``add_arguments(parser)`` and
# ``run(args) -> int``; imports are lazy so ``walrus --help`` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "node": ("node.agent.cli", "run a node agent"),
    "orchestrator": ("orchestrator.cli", "run an orchestrator"),
    "engine": ("node.engine.embedded.cli", "run a standalone embedded engine server"),
    "cluster": ("walrus.localcluster.cli", "start/stop/inspect a local cluster of real processes"),
    "ctl": ("walrus.ctl", "query and steer a running cluster"),
    "drill": ("walrus.drill.cli", "chaos failover drills that measure RTO and RPO"),
    "bench": ("walrus.bench", "benchmarks (engine, transport)"),
    "demo": ("walrus.demo", "local cluster + workload + failover demo"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="walrus", description="walrus high-availability orchestrator")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                p.set_defaults(_missing=f"'walrus {name}' is not built yet")
            else:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"walrus: {args._missing}", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except WalrusError as exc:
        print(f"walrus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
