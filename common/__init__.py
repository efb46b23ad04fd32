"""The shared library: what the node agent, the orchestrator and the tools all
use. Configuration loading, the LSN type, the etcd keyspace and the DCS client
(``dcs``, ``dcs_watch``), the records stored in etcd, errors, structured
logging, gRPC helpers and the agent's pid file. Imports only ``protos`` and
itself; never ``node``, ``orchestrator`` or ``tools``.
"""
