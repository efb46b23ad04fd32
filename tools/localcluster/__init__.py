"""Local clusters of real processes (``walrus cluster``), used by drills and the demo."""
from walrus_ha.tools.localcluster.cluster import LocalCluster, LocalClusterError, free_port
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind, Timings

__all__ = ["LocalCluster", "LocalClusterError", "ClusterSpec", "EngineKind", "Timings", "free_port"]
