"""Replication engines behind one interface (``base.Engine``).

``embedded/``: walrus's own WAL-streaming key-value engine (the default).
``postgres/``: real PostgreSQL. ``create_engine`` picks one from the config.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from walrus_ha.node.config import NodeConfig
    from walrus_ha.node.engine.base import Engine


def create_engine(config: NodeConfig) -> Engine:
    """Build the engine the node config names (not started)."""
    if config.engine == "embedded":
        from walrus_ha.node.engine.embedded import EmbeddedEngine
        return EmbeddedEngine.from_node_config(config)
    if config.engine == "postgres":
        from walrus_ha.node.engine.postgres import PostgresEngine
        return PostgresEngine.from_node_config(config)
    raise ValueError(f"unknown engine {config.engine!r}")
