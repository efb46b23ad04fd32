"""Config rendering of a local cluster: deterministic plans whose files load
through the real config loaders (so the fast timings pass their checks)."""
import itertools

import pytest
import yaml

from walrus_ha.node.config import load_node_config
from walrus_ha.orchestrator.config import load_orchestrator_config
from walrus_ha.tools.localcluster.render import ClusterSpec, EngineKind, ProcKind, plan_cluster


def ports(start=20000):
    counter = itertools.count(start)
    return lambda: next(counter)


def test_plan_has_etcd_nodes_orchestrators_in_start_order():
    plan = plan_cluster(ClusterSpec("/c", nodes=3), ports())
    assert [p.kind for p in plan.procs] == [ProcKind.ETCD] + [ProcKind.NODE] * 3 + [ProcKind.ORCHESTRATOR] * 2
    assert [p.name for p in plan.of_kind(ProcKind.NODE)] == ["node1", "node2", "node3"]
    assert plan.etcd_endpoints == ("127.0.0.1:20000",)


def test_ports_are_unique_even_if_the_source_repeats():
    repeating = iter([5000, 5000, 5001, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009, 5010, 5011, 5012])
    plan = plan_cluster(ClusterSpec("/c", nodes=2, orchestrators=2), lambda: next(repeating))
    used = [port for p in plan.procs for port in p.ports.values()]
    assert len(used) == len(set(used))


def test_external_etcd_is_not_started():
    plan = plan_cluster(ClusterSpec("/c", etcd_endpoints=("10.0.0.1:2379",)), ports())
    assert not plan.of_kind(ProcKind.ETCD)
    node = plan.of_kind(ProcKind.NODE)[0]
    assert node.config["etcd"]["endpoints"] == ["10.0.0.1:2379"]


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("engine", list(EngineKind), ids=lambda e: e.value)
def test_rendered_files_load_through_the_real_loaders(tmp_path, engine, sync):
    plan = plan_cluster(ClusterSpec(str(tmp_path), nodes=3, engine=engine, sync=sync), ports())
    for p in plan.of_kind(ProcKind.NODE):
        path = tmp_path / f"{p.name}.yaml"
        path.write_text(yaml.safe_dump(p.config))
        cfg = load_node_config(str(path))
        assert cfg.engine == engine.value
        assert cfg.agent_listen == f"127.0.0.1:{p.ports['agent']}"
        assert cfg.api_url == f"http://127.0.0.1:{p.ports['api']}"
        assert cfg.ttl <= 5 and cfg.safety_margin < cfg.ttl / 2
        assert p.argv[-2:] == ("--config", p.config_path)
    for p in plan.of_kind(ProcKind.ORCHESTRATOR):
        path = tmp_path / f"{p.name}.yaml"
        path.write_text(yaml.safe_dump(p.config))
        cfg = load_orchestrator_config(str(path))
        assert cfg.synchronous_mode is sync
        assert cfg.listen == f"127.0.0.1:{p.ports['listen']}"
        assert cfg.metrics_listen == f"127.0.0.1:{p.ports['metrics']}"


@pytest.mark.parametrize("kwargs", [{"nodes": 0}, {"nodes": 10}, {"orchestrators": 0}], ids=str)
def test_out_of_range_spec_is_refused(kwargs):
    with pytest.raises(ValueError):
        ClusterSpec("/c", **kwargs)
