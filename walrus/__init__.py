"""walrus: shared code for the node agent and the orchestrator.

This package is the one small place both sides import: configuration loading,
the LSN type, the etcd keyspace, errors, logging and the command line. Neither
``node`` nor ``orchestrator`` imports the other's internals.
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
