"""The node agent (``walrus node``): one per database node.

``agent.NodeAgent`` owns the engine's life cycle, keeps the member key alive in
etcd, holds the leader key while primary and fences itself (``leader``) the
moment it can no longer prove it holds it. ``reconcile`` is the loop's pure
decision, ``actions`` carries the steps and the RPC actions out through the
narrow ``port.AgentPort`` (imports point one way: ``agent`` -> ``actions``),
``status`` holds ``AgentState`` / ``AgentStatus``, ``service`` serves the
NodeAgent + Health gRPC API, ``convert`` is the one adapter between protos
and dataclasses, ``cli`` is ``walrus node``.
"""
