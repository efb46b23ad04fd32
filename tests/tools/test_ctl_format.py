"""walrus ctl output: PostgreSQL-style LSNs, ints in JSON, address sources."""
import argparse
import json

import pytest

from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import cluster_pb2
from walrus_ha.tools import ctl


def test_to_dict_formats_lsns_and_int64s():
    reply = cluster_pb2.ListMembersReply(
        members=[cluster_pb2.Member(name="a", role=1, flush_lsn=0x1_0000_00AB, term=7, lag_bytes=12,
                                    reachable=True, is_leader=True)],
        leader=cluster_pb2.Leader(name="a", term=7, present=True), state="HEALTHY")
    data = ctl.to_dict(reply)
    m = data["members"][0]
    assert m["flush_lsn"] == "1/AB" and m["replay_lsn"] == "0/0"
    assert m["term"] == 7 and m["lag_bytes"] == 12 and m["role"] == "primary"
    json.dumps(data)
    text = ctl.members_table(reply)
    assert "1/AB" in text and "a *" in text and "HEALTHY" in text


def test_history_and_explain_tables():
    rec = cluster_pb2.HistoryRecord(term=3, kind="failover", old_leader="a", new_leader="b",
                                    last_primary_lsn=100, promoted_lsn=90, bytes_possibly_lost=10,
                                    started_at=1700000000.0, finished_at=1700000000.5, reason="primary gone")
    text = ctl.history_table([rec])
    assert "0/64" in text and "0/5A" in text and "0.500" in text
    exp = cluster_pb2.ExplainFailoverReply(winner="b", state="HEALTHY", candidates=[
        cluster_pb2.Candidate(name="c", eligible=False, reason="nofailover"),
        cluster_pb2.Candidate(name="b", rank=1, eligible=True, flush_lsn=5)])
    lines = ctl.explain_text(exp).splitlines()
    assert "winner now: b" in lines[0]
    assert lines[3].split()[1] == "b"       # ranked candidates first


def test_leader_line():
    assert ctl.leader_line(cluster_pb2.Leader()) == "no leader"
    assert ctl.leader_line(cluster_pb2.Leader(name="a", term=2, present=True)).startswith("a (term 2")
    assert ctl.leader_line(cluster_pb2.Leader(name="a", term=2, present=True)).endswith("NOT writable yet")
    assert ctl.leader_line(cluster_pb2.Leader(name="a", term=2, present=True, writable=True)).endswith(" writable")


def test_orchestrator_addresses(tmp_path, monkeypatch):
    monkeypatch.delenv("WALRUS_ORCHESTRATORS", raising=False)

    def ns(**kw):
        return argparse.Namespace(**{"dir": None, "orchestrators": None, **kw})
    assert ctl.orchestrator_addresses(ns(orchestrators="h:1, h:2")) == ["h:1", "h:2"]
    (tmp_path / "cluster.json").write_text(json.dumps({"orchestrators": ["127.0.0.1:9"]}))
    assert ctl.orchestrator_addresses(ns(dir=str(tmp_path))) == ["127.0.0.1:9"]
    with pytest.raises(WalrusError):
        ctl.orchestrator_addresses(ns(dir=str(tmp_path / "nope")))
    with pytest.raises(WalrusError):
        ctl.orchestrator_addresses(ns())


def test_unreachable_orchestrators_give_a_clear_error(capsys):
    from walrus_ha.tools.cli import main
    assert main(["ctl", "list", "--orchestrators", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert "no orchestrator answered" in capsys.readouterr().err
