"""cluster.json: written on create, read back identically; configs on disk."""
import itertools

import pytest

from walrus_ha.node.config import load_node_config
from walrus_ha.tools.localcluster import ClusterSpec, LocalCluster, LocalClusterError
from walrus_ha.tools.localcluster.render import EngineKind


def test_create_then_load_round_trips(tmp_path):
    ports = itertools.count(30000)
    spec = ClusterSpec(directory=str(tmp_path / "c"), nodes=2, engine=EngineKind.EMBEDDED, sync=True,
                       etcd_endpoints=("127.0.0.1:2379",))
    made = LocalCluster.create(spec, port_source=lambda: next(ports))
    loaded = LocalCluster.load(str(tmp_path / "c"))
    assert loaded.to_json() == made.to_json()
    assert loaded.node_names() == ["node1", "node2"]
    assert loaded.orchestrator_addresses() == made.orchestrator_addresses()
    assert loaded.name_of_data_address(loaded.data_address("node2")) == "node2"
    cfg = load_node_config(loaded.processes["node1"].plan.config_path)
    assert cfg.etcd.endpoints == ("127.0.0.1:2379",)
    assert not any(loaded.running(n) for n in loaded.processes)
    with pytest.raises(LocalClusterError, match="already holds"):
        LocalCluster.create(spec)


def test_load_without_a_cluster(tmp_path):
    with pytest.raises(LocalClusterError, match="no cluster"):
        LocalCluster.load(str(tmp_path))
