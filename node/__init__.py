"""The node agent and its replication engines."""
