"""The node agent and its replication engines."""

import walrus  # noqa: F401,E402  (first: turns gRPC's fork handlers off before any node module imports grpc)
