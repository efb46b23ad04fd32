"""deploy/grafana/walrus.json and deploy/prometheus/prometheus.yml: valid
files, and every metric the dashboard queries is one the agents or the
orchestrators export (names taken from the collectors' real output)."""
from __future__ import annotations

import json
import pathlib
import re
import sys

import yaml
from prometheus_client.parser import text_string_to_metric_families

from walrus_ha.common.metrics import CallbackCollector, metrics_route
from walrus_ha.common.records import HistoryRecord
from walrus_ha.node.agent import metrics as agent_metrics
from walrus_ha.node.engine.embedded.walstats import WalStats
from walrus_ha.orchestrator.core.model import Promote
from walrus_ha.orchestrator.core.states import State
from walrus_ha.orchestrator.executor import Outcome
from walrus_ha.orchestrator.metrics import OrchestratorMetrics

ROOT = pathlib.Path(__file__).resolve().parents[2]
for _where in ("tests/node/agent", "tests/orchestrator"):     # the collectors' own test fixtures
    sys.path.insert(0, str(ROOT / _where))
from test_agent_metrics import PRIMARY_STATUS, STANDBY_STATUS  # noqa: E402
from test_agent_probes import PRIMARY, REPLICA  # noqa: E402
from test_orch_metrics import SNAPSHOT  # noqa: E402


def exported_names() -> set[str]:
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry
    names: set[str] = set()
    orch = OrchestratorMetrics("walrus", "o1")
    orch.seed([HistoryRecord(term=2, kind="failover", started_at=1.0, finished_at=2.0)])
    orch.on_outcome(Outcome(Promote("b", 2), True, True))
    orch.attach(SimpleNamespace(election=SimpleNamespace(is_active=lambda: True), state=State.HEALTHY,
                                last_observation=SimpleNamespace(snapshot=SNAPSHOT)))
    registries = [orch.registry]
    for status, facts in ((PRIMARY_STATUS, PRIMARY), (STANDBY_STATUS, REPLICA)):
        r = CollectorRegistry(auto_describe=False)
        r.register(CallbackCollector(lambda s=status, f=facts: agent_metrics.families(
            s, f, WalStats().snapshot(), cluster="walrus", member="a")))
        registries.append(r)
    for r in registries:
        for fam in text_string_to_metric_families(metrics_route(r)({}).body.decode()):
            names.add(fam.name)
            names.update(s.name for s in fam.samples)
    return names


def test_dashboard_queries_only_exported_metrics():
    dash = json.loads((ROOT / "deploy/grafana/walrus.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    used = {n for e in exprs for n in re.findall(r"\bwalrus_[a-z_]+", e)}
    used.discard("walrus_rpc_errors_total")      # the interceptor's: counted only once a call fails
    exported = exported_names()
    assert used - exported == set()
    assert {"walrus_role", "walrus_term", "walrus_failovers_total", "walrus_wal_fsync_seconds_bucket"} <= used
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_example_scrapes_agents_and_orchestrators():
    conf = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    assert set(jobs) == {"walrus-agents", "walrus-orchestrators"}
    assert all(j["metrics_path"] == "/metrics" for j in jobs.values())
    assert all(t.endswith(":8008") for t in jobs["walrus-agents"]["static_configs"][0]["targets"])
