"""The PostgreSQL engine: walrus manages real PostgreSQL 15+ clusters.

``PostgresEngine`` implements ``node.engine.base.Engine``; see ``engine.py``
for the fencing model and ``process.py`` for how the postmaster is tied to
the agent's life.
"""
from walrus_ha.node.engine.postgres.engine import PostgresEngine

__all__ = ["PostgresEngine"]
