"""The agent's /metrics (node/agent/metrics.py), the WAL counters
(embedded/walstats.py) and the gRPC error interceptor (common/metrics.py):
collectors fed plain status values, output parsed with
``prometheus_client.parser``; the interceptor on an in-process gRPC server."""
from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from test_agent_probes import PRIMARY, REPLICA
from walrus_ha.common import grpcutil
from walrus_ha.common.metrics import CONTENT_TYPE, CallbackCollector, RpcErrors, metrics_route
from walrus_ha.common.status import Role
from walrus_ha.node.agent import metrics
from walrus_ha.node.agent.status import AgentState, AgentStatus
from walrus_ha.node.engine.base import EngineStatus, StandbyInfo
from walrus_ha.node.engine.embedded.wal import Wal
from walrus_ha.node.engine.embedded.walstats import FSYNC_BUCKETS, WalStats

PRIMARY_ENGINE = EngineStatus(
    role=Role.PRIMARY, timeline=3, term=7, write_lsn=5000, flush_lsn=4900, replay_lsn=4900, engine="embedded",
    sync_standbys="FIRST 1 (b)",
    standbys=(StandbyInfo("b", send_lag_bytes=10, flush_lag_bytes=100, replay_lag_bytes=150, write_lag_s=0.001,
                          flush_lag_s=0.002, replay_lag_s=0.003, sync_state="sync"),
              StandbyInfo("c", flush_lag_bytes=4000, sync_state="async")))
PRIMARY_STATUS = AgentStatus(name="a", cluster="walrus", agent_address="x:1", data_address="x:2",
                             engine=PRIMARY_ENGINE, holds_leader=True, leader_term=7, lease_remaining_s=2.5,
                             state=AgentState.PRIMARY)
STANDBY_STATUS = replace(PRIMARY_STATUS, name="b", holds_leader=False, state=AgentState.STANDBY,
                         lease_remaining_s=-1.0,
                         engine=EngineStatus(role=Role.STANDBY, timeline=3, term=7, flush_lsn=4800, replay_lsn=4700,
                                             streaming=True, fenced=True,
                                             fence_reason="following a@127.0.0.1:7101", engine="embedded"))


def scrape(status, facts, wal=None, member="a"):
    """{(name, frozenset(labels without cluster/member)): value} of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallbackCollector(
        lambda: metrics.families(status, facts, wal, cluster="walrus", member=member)))
    resp = metrics_route(registry)({})
    assert (resp.code, resp.content_type) == (200, "text/plain; version=0.0.4; charset=utf-8") == (200, CONTENT_TYPE)
    out = {}
    for fam in text_string_to_metric_families(resp.body.decode()):
        for s in fam.samples:
            assert (s.labels["cluster"], s.labels["member"]) == ("walrus", member)
            rest = {k: v for k, v in s.labels.items() if k not in ("cluster", "member")}
            out[(s.name, frozenset(rest.items()))] = s.value
    assert not any(name.endswith("_created") for name, _ in out)
    return out


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_primary_role_term_lsns_lease_and_standbys():
    m = scrape(PRIMARY_STATUS, PRIMARY)
    assert value(m, "walrus_role", role="primary") == 1
    assert value(m, "walrus_role", role="standby") == 0 and value(m, "walrus_role", role="stopped") == 0
    assert value(m, "walrus_agent_state", state="primary") == 1
    assert value(m, "walrus_primary") == 1 and value(m, "walrus_replica") == 0
    assert (value(m, "walrus_term"), value(m, "walrus_leader_term"), value(m, "walrus_timeline")) == (7, 7, 3)
    assert (value(m, "walrus_flush_lsn"), value(m, "walrus_write_lsn")) == (4900, 5000)
    assert value(m, "walrus_lease_remaining_seconds") == 2.5 and value(m, "walrus_lease_valid") == 1
    assert value(m, "walrus_fenced", reason="") == 0
    assert value(m, "walrus_replication_lag_bytes", standby="b", stage="flush") == 100
    assert value(m, "walrus_replication_lag_bytes", standby="c", stage="flush") == 4000
    assert value(m, "walrus_replication_lag_seconds", standby="b", stage="replay") == 0.003
    assert value(m, "walrus_replication_sync_state", standby="b", sync_state="sync") == 1
    assert value(m, "walrus_sync_standbys_required") == 1
    assert value(m, "walrus_info", version=PRIMARY_STATUS.version, engine="embedded") == 1
    assert ("walrus_lag_bytes", frozenset()) not in m       # a primary has no lag of its own


def test_standby_own_lag_fence_reason_and_sync_membership():
    m = scrape(STANDBY_STATUS, replace(REPLICA, in_sync_set=True), member="b")
    assert value(m, "walrus_role", role="standby") == 1 and value(m, "walrus_replica") == 1
    assert value(m, "walrus_lag_bytes") == 1000 and value(m, "walrus_sync_set_member") == 1
    assert value(m, "walrus_fenced", reason="following") == 1
    assert value(m, "walrus_lease_remaining_seconds") == 0        # never negative
    assert value(m, "walrus_streaming") == 1
    assert not any(name.startswith("walrus_replication_") for name, _ in m)
    assert ("walrus_sync_standbys_required", frozenset()) not in m


def test_before_the_first_status_only_the_facts_show():
    facts = replace(PRIMARY, role=Role.STOPPED, state=AgentState.STARTING, holds_leader=False, lease_valid=False)
    m = scrape(None, facts)
    assert value(m, "walrus_role", role="stopped") == 1 and value(m, "walrus_primary") == 0
    assert ("walrus_term", frozenset()) not in m


@pytest.mark.parametrize("reason, label", [
    ("lease deadline passed: renewal failed", "lease deadline passed"),
    ("following n2@127.0.0.1:7101", "following"),
    ("taking leadership at term 4", "taking leadership at term"),
    ("agent starting: leadership not proven", "agent starting"),
    ("", ""),
])
def test_fence_reason_is_a_bounded_label(reason, label):
    assert metrics.fence_reason_class(reason) == label


def test_wal_counters_and_fsync_histogram(tmp_path):
    wal = Wal.open(str(tmp_path), 1 << 20)
    try:
        for _ in range(3):
            wal.append(b"x" * 100, 1)
            wal.flush()
        snap = wal.stats_snapshot()
    finally:
        wal.close()
    assert snap.bytes_written == 3 * 120 and snap.fsync_count == 3 and snap.fsync_seconds > 0
    assert snap.buckets[-1] == (float("inf"), 3)
    m = scrape(PRIMARY_STATUS, PRIMARY, snap)
    assert value(m, "walrus_wal_written_bytes_total") == 360
    assert value(m, "walrus_wal_fsync_seconds_count") == 3
    assert value(m, "walrus_wal_fsync_seconds_bucket", le="+Inf") == 3


def test_histogram_buckets_are_cumulative_and_inclusive():
    stats = WalStats()
    for s in (FSYNC_BUCKETS[0], FSYNC_BUCKETS[0] * 1.5, 10.0):
        stats.fsynced(s)
    counts = dict(stats.snapshot().buckets)
    assert counts[FSYNC_BUCKETS[0]] == 1 and counts[FSYNC_BUCKETS[1]] == 2
    assert counts[FSYNC_BUCKETS[-1]] == 2 and counts[float("inf")] == 3


def _echo_server(registry):
    def ok(request, context):
        return request

    def refuse(request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no")

    def boom(request, context):
        raise RuntimeError("bug")

    def stream(request, context):
        yield b"1"
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    ident = bytes
    handlers = {"Ok": grpc.unary_unary_rpc_method_handler(ok, ident, ident),
                "Refuse": grpc.unary_unary_rpc_method_handler(refuse, ident, ident),
                "Boom": grpc.unary_unary_rpc_method_handler(boom, ident, ident),
                "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident)}
    server = grpcutil.server(max_workers=2, interceptors=[RpcErrors(registry, {"member": "a"})])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_rpc_errors_are_counted_by_method_and_code():
    registry = CollectorRegistry(auto_describe=False)
    server, port = _echo_server(registry)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = {m: ch.unary_unary(f"/t.T/{m}") for m in ("Ok", "Refuse", "Boom")}
            assert call["Ok"](b"hi", timeout=5) == b"hi"
            for m in ("Refuse", "Refuse", "Boom"):
                with pytest.raises(grpc.RpcError):
                    call[m](b"", timeout=5)
            with pytest.raises(grpc.RpcError) as err:
                list(ch.unary_stream("/t.T/Stream")(b"", timeout=5))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
    got = {(s.labels["method"], s.labels["code"]): s.value
           for fam in text_string_to_metric_families(metrics_route(registry)({}).body.decode())
           for s in fam.samples if s.name == "walrus_rpc_errors_total"}
    assert got == {("/t.T/Refuse", "FAILED_PRECONDITION"): 2, ("/t.T/Boom", "UNKNOWN"): 1,
                   ("/t.T/Stream", "UNAVAILABLE"): 1}


def test_no_global_registry_is_touched():
    from prometheus_client import REGISTRY
    before = set(REGISTRY._names_to_collectors)
    RpcErrors(CollectorRegistry())
    metrics.agent_registry(object(), "walrus", "a")
    assert set(REGISTRY._names_to_collectors) == before
