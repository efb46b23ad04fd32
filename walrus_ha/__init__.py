"""walrus: a high-availability failover orchestrator (import root ``walrus_ha``).

Everything walrus installs lives under this one name; the folders of the
source tree map onto it (``pyproject.toml``, ``[tool.setuptools.package-dir]``)::

    walrus_ha.protos        protos/         the gRPC contract (generated stubs)
    walrus_ha.common        common/         shared library: config, etcd (DCS), records, errors, logging
    walrus_ha.node          node/           node agent and its replication engines
    walrus_ha.orchestrator  orchestrator/   etcd-elected orchestrators (pure core + I/O shell)
    walrus_ha.tools         tools/          command line, local cluster, drills, benchmarks, demo

Imports point down that list only (``tests/test_layering.py``). This module
runs first whatever the entry point, because Python imports a package's
parent before the package: it is the one place for process-wide gRPC
settings, which must be in the environment before ``grpc`` is imported.
"""

import os

__version__ = "0.1.0"

# Before anything imports grpc: turn off gRPC core's fork handlers
# (pthread_atfork). The agent forks PostgreSQL programs from a process with
# busy gRPC threads; with the handlers on, a child that does not exec via
# vfork (a uid switch or a preexec_fn forces fork) died of SIGSEGV/SIGABRT
# before exec in 687 of 5000 forks, with them off in 0 (see
# tests/node/engine/postgres/fork_crash_repro.py). Every child walrus forks
# execs at once and never uses gRPC, so it needs none of what they do.
# Too late once grpc is imported; an explicit setting wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

# Before anything imports grpc: serve (and run the other endpoints) on gRPC
# core's classic I/O manager instead of the EventEngine (default since grpcio
# 1.6x). On this 2-core machine each one-way message on a loopback stream
# costs about 100 us less that way, and a commit at `on` crosses four of
# them: `walrus bench engine` on/1 p50 went from 2.53 to 1.95 ms back to back
# (docs/internals.md, "gRPC transport settings"). The client side stays on
# the EventEngine: with `event_engine_client` off too, connects to a
# restarted agent failed with "connect() timed out" and two failover tests
# failed. The names exist from grpcio 1.81 on (our floor); an explicit
# GRPC_EXPERIMENTS wins.
GRPC_EXPERIMENTS_OFF = ("event_engine_listener", "event_engine_for_all_other_endpoints",
                        "event_engine_callback_cq")
os.environ.setdefault("GRPC_EXPERIMENTS", ",".join("-" + name for name in GRPC_EXPERIMENTS_OFF))
