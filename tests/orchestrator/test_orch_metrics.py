"""The orchestrator's /metrics (orchestrator/metrics.py): pure families over
plain values and the counters fed by executed actions, parsed with
``prometheus_client.parser``; no process."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from walrus_ha.common.errors import ConfigError
from walrus_ha.common.metrics import metrics_route
from walrus_ha.common.records import HistoryRecord
from walrus_ha.common.status import Role
from walrus_ha.orchestrator.config import load_orchestrator_config
from walrus_ha.orchestrator.core.model import (
    ClusterSnapshot,
    HistoryEntry,
    MemberView,
    OperationKind,
    Promote,
    RecordHistory,
    Wait,
)
from walrus_ha.orchestrator.core.states import State
from walrus_ha.orchestrator.executor import Outcome
from walrus_ha.orchestrator.metrics import SPARE, OrchestratorMetrics


def entry(term, kind=OperationKind.FAILOVER, started=100.0, finished=100.4, lost=300):
    return HistoryEntry(term=term, kind=kind, old_leader="a", new_leader="b", last_primary_lsn=1300,
                        promoted_lsn=1000, bytes_possibly_lost=lost, started_at=started, finished_at=finished,
                        candidates=(), reason="test")


SNAPSHOT = ClusterSnapshot(term=4, members=(MemberView("a", reachable=False, agent_up=False, role=Role.UNKNOWN),
                                            MemberView("b", role=Role.PRIMARY), MemberView("c", role=Role.STANDBY)))


def scrape(metrics, active=True, state=State.HEALTHY, snapshot=SNAPSHOT):
    metrics.attach(SimpleNamespace(election=SimpleNamespace(is_active=lambda: active), state=state,
                                   last_observation=SimpleNamespace(snapshot=snapshot)))
    out = {}
    for fam in text_string_to_metric_families(metrics_route(metrics.registry)({}).body.decode()):
        for s in fam.samples:
            assert (s.labels["cluster"], s.labels["orchestrator"]) == ("walrus", "o1")
            rest = frozenset((k, v) for k, v in s.labels.items() if k not in ("cluster", "orchestrator"))
            out[(s.name, rest)] = s.value
    return out


def v(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_active_state_members_and_no_failover_yet():
    m = scrape(OrchestratorMetrics("walrus", "o1"))
    assert v(m, "walrus_orchestrator_active") == 1
    assert v(m, "walrus_orchestrator_state", state="healthy") == 1
    assert v(m, "walrus_orchestrator_state", state=SPARE) == 0
    assert v(m, "walrus_orchestrator_members", role="primary") == 1
    assert v(m, "walrus_orchestrator_members", role="unknown") == 1
    assert v(m, "walrus_orchestrator_members_reachable") == 2
    assert v(m, "walrus_failovers_total") == 0 and v(m, "walrus_switchovers_total") == 0
    assert not any(name.startswith("walrus_last_failover") for name, _ in m)


def test_a_spare_shows_spare_and_no_members():
    m = scrape(OrchestratorMetrics("walrus", "o1"), active=False, state=State.HEALTHY)
    assert v(m, "walrus_orchestrator_active") == 0
    assert v(m, "walrus_orchestrator_state", state=SPARE) == 1
    assert v(m, "walrus_orchestrator_state", state="healthy") == 0
    assert not any(name == "walrus_orchestrator_members" for name, _ in m)


def test_recorded_history_counts_and_sets_the_last_failover_receipt():
    metrics = OrchestratorMetrics("walrus", "o1")
    metrics.on_outcome(Outcome(Promote("b", 5), True, True))
    metrics.on_outcome(Outcome(Wait("nothing to do"), True, False))
    metrics.on_outcome(Outcome(RecordHistory(entry(5)), True, True))
    metrics.on_outcome(Outcome(RecordHistory(entry(6, OperationKind.SWITCHOVER)), True, True))
    metrics.on_outcome(Outcome(RecordHistory(entry(7)), False, False, "etcd down"))     # not written
    m = scrape(metrics)
    assert v(m, "walrus_failovers_total") == 1 and v(m, "walrus_switchovers_total") == 1
    assert abs(v(m, "walrus_last_failover_rto_seconds") - 0.4) < 1e-9
    assert v(m, "walrus_last_failover_bytes_possibly_lost") == 300
    assert v(m, "walrus_last_failover_term") == 5          # the switchover is no failover
    assert v(m, "walrus_orchestrator_actions_total", action="promote", ok="true") == 1
    assert v(m, "walrus_orchestrator_actions_total", action="record_history", ok="false") == 1
    assert not any(dict(labels).get("action") == "wait" for _, labels in m)


def test_seeded_from_stored_history_keeps_the_newest_failover():
    metrics = OrchestratorMetrics("walrus", "o1")
    stored = [HistoryRecord(term=3, kind="failover", started_at=1.0, finished_at=3.0, bytes_possibly_lost=9),
              HistoryRecord(term=4, kind="switchover", started_at=5.0, finished_at=5.5)]
    metrics.seed_from_etcd(SimpleNamespace(list_history=lambda n, deadline_s: stored), 1.0)
    m = scrape(metrics)
    assert (v(m, "walrus_last_failover_term"), v(m, "walrus_last_failover_rto_seconds")) == (3, 2.0)
    metrics.on_outcome(Outcome(RecordHistory(entry(8, lost=0)), True, True))
    assert v(scrape(metrics), "walrus_last_failover_term") == 8
    metrics.seed(stored)                                    # older records do not replace it
    assert v(scrape(metrics), "walrus_last_failover_bytes_possibly_lost") == 0


def test_metrics_listen_is_off_by_default_and_checked(tmp_path):
    path = tmp_path / "orch.yaml"
    path.write_text("id: o1\n")
    assert load_orchestrator_config(str(path)).metrics_listen == ""
    path.write_text("id: o1\nmetrics_listen: 127.0.0.1:9408\n")
    assert load_orchestrator_config(str(path)).metrics_listen == "127.0.0.1:9408"
    path.write_text("id: o1\nmetrics_listen: nowhere\n")
    with pytest.raises(ConfigError, match="metrics_listen"):
        load_orchestrator_config(str(path))
