"""walrus: shared code for the node agent and the orchestrator.

This package is the one small place both sides import: configuration loading,
the LSN type, the etcd keyspace, errors, logging and the command line. Neither
``node`` nor ``orchestrator`` imports the other's internals.
"""

__version__ = "0.1.0"
