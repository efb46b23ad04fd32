"""/metrics on a real local cluster (etcd, 3 embedded agents, 2
orchestrators as processes): every agent's role and term and the active
orchestrator's view agree with ``walrus ctl list --json``, before and after
the primary is SIGKILLed, and the failover is counted with its receipt."""
import json
import time
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_ctl_integration import cluster, walrus  # noqa: F401 (the module-scoped cluster fixture)
from walrus_ha.protos import store_pb2, store_pb2_grpc
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration


def scrape(url):
    """{(name, frozenset(labels)): value}; None when the process does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = resp.read().decode()
    except OSError:
        return None
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def one(samples, name, **labels):
    """The value of the single series ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def ctl_members(d):
    listed = walrus("ctl", "list", "--json", "--dir", str(d))
    assert listed.returncode == 0, listed.stderr + listed.stdout
    members = {m["name"]: m for m in json.loads(listed.stdout)["members"]}
    for m in members.values():
        m["role"] = m["role"].lower().removeprefix("role_")     # the proto enum's name
    return members


def agreement(d, info):
    """(leader, problems): what the agents' and orchestrators' /metrics say
    against ``ctl list --json``; no problems means they agree."""
    members = ctl_members(d)
    problems = []
    leaders = [n for n, m in members.items() if m["role"] == "primary" and m["is_leader"]]
    for name, m in members.items():
        s = scrape(info["members"][name]["http"] + "/metrics")
        if s is None:
            if m["role"] not in ("stopped", "unknown", "unspecified") or m["reachable"]:
                problems.append(f"{name}: no /metrics but ctl says {m['role']}")
            continue
        role = next(dict(ls)["role"] for (n, ls), v in s.items() if n == "walrus_role" and v == 1)
        if role != m["role"] or one(s, "walrus_term") != m["term"]:
            problems.append(f"{name}: metrics {role}/{one(s, 'walrus_term')}, ctl {m['role']}/{m['term']}")
        if one(s, "walrus_primary") != (name in leaders):
            problems.append(f"{name}: walrus_primary {one(s, 'walrus_primary')}, leaders {leaders}")
    orchs = [s for s in (scrape(u) for u in info["orchestrator_metrics"].values()) if s is not None]
    active = [s for s in orchs if one(s, "walrus_orchestrator_active") == 1]
    if len(active) != 1:
        problems.append(f"{len(active)} active orchestrators")
    elif one(active[0], "walrus_orchestrator_members", role="primary") != len(leaders):
        problems.append("the active orchestrator counts another number of primaries")
    return (leaders[0] if len(leaders) == 1 else None), problems, (active[0] if len(active) == 1 else None)


def wait_agreement(d, info, timeout_s=60.0, leader_not=None):
    deadline = time.monotonic() + timeout_s
    while True:
        leader, problems, active = agreement(d, info)
        if leader is not None and leader != leader_not and not problems:
            return leader, active
        assert time.monotonic() < deadline, (leader, problems)
        time.sleep(0.2)


def test_metrics_agree_with_ctl_before_and_after_a_failover(cluster):  # noqa: F811
    d, info = cluster
    assert set(info["orchestrator_metrics"]) == {"orch1", "orch2"}
    old, active = wait_agreement(d, info)
    old_term = one(scrape(info["members"][old]["http"] + "/metrics"), "walrus_term")
    failovers = one(active, "walrus_failovers_total")
    active_id = next(dict(ls)["orchestrator"] for ls in (k[1] for k in active))
    with grpc.insecure_channel(info["members"][old]["data_address"]) as ch:
        for i in range(3):
            store_pb2_grpc.StoreStub(ch).Put(store_pb2.PutRequest(key=f"m{i}".encode(), value=b"x"), timeout=10)
    # the primary: one series per standby, and WAL written and fsynced
    primary = scrape(info["members"][old]["http"] + "/metrics")
    assert {dict(ls)["standby"] for (n, ls) in primary if n == "walrus_replication_lag_bytes"} == \
        set(info["members"]) - {old}
    assert one(primary, "walrus_wal_written_bytes_total") > 0
    assert one(primary, "walrus_wal_fsync_seconds_count") > 0

    LocalCluster.load(str(d)).kill(old)
    others = [n for n in info["members"] if n != old]
    deadline = time.monotonic() + 60
    while not any((scrape(info["members"][n]["http"] + "/metrics") or {}).get(("walrus_primary", frozenset(
            {("cluster", "walrus"), ("member", n)}))) == 1 for n in others):    # cheap: no ctl process per poll
        assert time.monotonic() < deadline, "no standby became primary"
        time.sleep(0.1)
    new, active = wait_agreement(d, info, leader_not=old)
    new_metrics = scrape(info["members"][new]["http"] + "/metrics")
    assert one(new_metrics, "walrus_term") > old_term
    if next(dict(ls)["orchestrator"] for ls in (k[1] for k in active)) == active_id:
        assert one(active, "walrus_failovers_total") == failovers + 1
    assert one(active, "walrus_last_failover_term") == one(new_metrics, "walrus_term")
    assert one(active, "walrus_last_failover_rto_seconds") >= 0
    assert one(active, "walrus_last_failover_bytes_possibly_lost") >= 0
