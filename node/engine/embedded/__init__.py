"""The embedded engine: walrus's own WAL-streaming key-value store.

Storage (``wal``, ``records``, ``state``, ``checkpoint``, ``timeline``,
``storage``) and replication (``sender``, ``receiver``, ``syncrep``,
``slots``, the gRPC servicers) are wired together by ``EmbeddedEngine``
(``engine``; its write path in ``writes``, its role changes in
``transitions``). The replication modules and servicers declare what they
need of the engine as Protocols and do not import ``engine``.
"""
from __future__ import annotations


def __getattr__(name: str):
    # Lazy, so importing a storage module does not pull in gRPC.
    if name == "EmbeddedEngine":
        from walrus_ha.node.engine.embedded.engine import EmbeddedEngine
        return EmbeddedEngine
    raise AttributeError(name)


__all__ = ["EmbeddedEngine"]
