"""walrus ctl rendering (pure): typed tags, wrapped history, topology, dsn,
JSON errors; and the command line's version, closed pipe and --json errors."""
import json
import os
import subprocess
import sys

import grpc
import pytest

import walrus_ha
from walrus_ha.common import rpcerrors
from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import cluster_pb2, common_pb2
from walrus_ha.tools import ctl, ctl_views
from walrus_ha.tools.cli import main
from walrus_ha.tools.localcluster.client import ClusterUnavailable, OperationRefused

P, S = common_pb2.ROLE_PRIMARY, common_pb2.ROLE_STANDBY


@pytest.mark.parametrize("text,value", [("0", 0), ("-5", -5), ("12", 12), ("true", True), ("False", False),
                                        ("x1", "x1"), ("1.5", "1.5"), ("", "")])
def test_typed_tag(text, value):
    assert ctl_views.typed_tag(text) == value and type(ctl_views.typed_tag(text)) is type(value)


def test_json_tags_are_typed():
    reply = cluster_pb2.ListMembersReply(members=[cluster_pb2.Member(
        name="a", tags={"priority": "0", "nofailover": "false", "zone": "eu-1"})])
    assert ctl.to_dict(reply)["members"][0]["tags"] == {"priority": 0, "nofailover": False, "zone": "eu-1"}


def test_history_reason_wraps_to_120_columns_and_json_keeps_it_whole():
    reason = "primary node1 lost: " + " ".join(f"word{i}" for i in range(60)) + " " + "x" * 150
    rec = cluster_pb2.HistoryRecord(term=3, kind="switchover", old_leader="node1", new_leader="node2",
                                    last_primary_lsn=100, promoted_lsn=90, bytes_possibly_lost=10,
                                    started_at=1700000000.0, finished_at=1700000000.5, reason=reason)
    lines = ctl.history_table([rec, rec]).splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[2].startswith("3     switchover  node1  node2  0/64") and lines[3].startswith("      receipt: ")
    reason_lines = lines[4:lines.index(lines[2], 3)]
    assert reason_lines[0].startswith("      reason: ") and len(reason_lines) > 2
    assert "".join(reason_lines).replace(" ", "") == "reason:" + reason.replace(" ", "")   # nothing dropped
    assert ctl.to_dict(cluster_pb2.HistoryReply(records=[rec]))["records"][0]["reason"] == reason


def test_detail_lines():
    assert ctl_views.detail_lines("reason", "short") == ["      reason: short"]
    assert ctl_views.detail_lines("reason", "") == ["      reason:"]
    assert ctl_views.detail_lines("r", "aaa bbb ccc", width=12, indent=0) == ["r: aaa bbb", "   ccc"]


def _members():
    return cluster_pb2.ListMembersReply(members=[
        cluster_pb2.Member(name="n1", role=P, is_leader=True, reachable=True, data_address="10.0.0.1:5432",
                           agent_address="10.0.0.1:7000", timeline=2, flush_lsn=0x300),
        cluster_pb2.Member(name="n2", role=S, upstream="n1@10.0.0.1:5432", streaming=True, reachable=True,
                           in_sync_set=True, data_address="10.0.0.2:5432", lag_bytes=0, timeline=2),
        cluster_pb2.Member(name="n3", role=S, upstream="n1@10.0.0.1:5432", streaming=True, reachable=True,
                           data_address="[::1]:5433", lag_bytes=4096, timeline=2),
        cluster_pb2.Member(name="n4", role=S, upstream="n3@[::1]:5433", streaming=True, reachable=True,
                           data_address="10.0.0.4:5432", lag_bytes=10, timeline=2),
        cluster_pb2.Member(name="n5", role=common_pb2.ROLE_STOPPED, reachable=False, data_address="10.0.0.5:5432"),
    ])


def test_topology_tree():
    roots = ctl_views.topology(_members())
    assert [r.name for r in roots] == ["n1", "n5"]
    assert [s.name for s in roots[0].standbys] == ["n2", "n3"]
    assert [(s.name, s.sync) for s in roots[0].standbys] == [("n2", "sync"), ("n3", "async")]
    assert roots[0].standbys[1].standbys[0].name == "n4"          # cascading standby under its upstream
    lines = ctl_views.topology_lines(roots)
    assert lines[0].startswith("n1  primary") and "(leader)" in lines[0]
    assert lines[1].startswith("|-- n2  standby  sync  streaming  lag 0 B")
    assert lines[2].startswith("\\-- n3  standby  async  streaming  lag 4096 B")
    assert lines[3].startswith("    \\-- n4  standby  async")
    assert lines[4].startswith("n5  stopped") and "UNREACHABLE" in lines[4]
    data = roots[0].to_dict()
    json.dumps(data)
    assert data["standbys"][1]["standbys"][0]["lag_bytes"] == 10


def test_dsn_primary_and_replicas():
    reply = _members()
    primary = ctl_views.dsn_targets(reply, "primary")
    assert ctl_views.libpq_dsn(primary, "primary", "postgres", "postgres") == (
        "host=10.0.0.1 port=5432 dbname=postgres user=postgres target_session_attrs=read-write")
    replicas = ctl_views.dsn_targets(reply, "replica")
    assert [m.name for m in replicas] == ["n2", "n3", "n4"]
    assert ctl_views.libpq_dsn(replicas, "replica", "app", "my db") == (
        "host=10.0.0.2,::1,10.0.0.4 port=5432,5433,5432 dbname='my db' user=app target_session_attrs=standby")
    with pytest.raises(ctl_views.DsnUnavailable):
        ctl_views.dsn_targets(cluster_pb2.ListMembersReply(), "primary")
    with pytest.raises(ctl_views.DsnUnavailable):
        ctl_views.dsn_targets(cluster_pb2.ListMembersReply(members=[reply.members[0]]), "replica")


def test_error_json():
    refused = OperationRefused(grpc.StatusCode.FAILED_PRECONDITION, "paused", "h:1", rpcerrors.Reason.REFUSED)
    assert ctl_views.error_json(refused) == {"error": "h:1 refused: FAILED_PRECONDITION: paused",
                                             "code": "FAILED_PRECONDITION", "reason": "REFUSED"}
    assert ctl_views.error_json(ClusterUnavailable("nobody"))["code"] == "UNAVAILABLE"
    assert ctl_views.error_json(WalrusError("x")) == {"error": "x", "code": "WalrusError"}


def test_errors_are_json_under_json(capsys):
    assert main(["ctl", "list", "--json", "--orchestrators", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["code"] == "UNAVAILABLE" and "no orchestrator answered" in data["error"]


def test_etcd_without_registered_orchestrators(capsys, etcd_session, cluster_name):
    assert main(["ctl", "list", "--json", "--etcd", etcd_session.endpoint, "--cluster", cluster_name]) == 1
    data = json.loads(capsys.readouterr().out)
    assert "no orchestrator registered" in data["error"] and cluster_name in data["error"]


def test_versions(capsys, monkeypatch):
    monkeypatch.delenv("WALRUS_ORCHESTRATORS", raising=False)
    assert main(["ctl", "version", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"version": walrus_ha.__version__}
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"walrus {walrus_ha.__version__}"


def test_closed_pipe_is_not_a_traceback():
    env = {k: v for k, v in os.environ.items() if k != "WALRUS_ORCHESTRATORS"}
    r, w = os.pipe()
    os.close(r)                      # the reader is gone before we write (`| head -0`)
    proc = subprocess.run([sys.executable, "-m", "walrus_ha", "ctl", "version"], stdout=w,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    os.close(w)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
