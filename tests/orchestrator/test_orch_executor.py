"""The executor: core actions -> agent RPCs / etcd writes (fakes: pure logic only)."""
from __future__ import annotations

import socket

import grpc
import pytest

from walrus_ha.common.errors import DcsUnavailable
from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.orchestrator.core.model import (
    Candidate,
    ClearFailoverState,
    ClearSwitchover,
    DemoteForSwitchover,
    FailoverState,
    Follow,
    HistoryEntry,
    OperationKind,
    Phase,
    Promote,
    PublishSync,
    RecordHistory,
    Rejoin,
    RevokeLeaderLease,
    SaveFailoverState,
    SyncMethod,
    Wait,
)
from walrus_ha.orchestrator.executor import Executor
from walrus_ha.protos import node_agent_pb2
from walrus_ha.tools.etcd_server import free_port


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeStub:
    """Records calls; ``script`` is a list of replies or errors to return in turn."""

    def __init__(self, script=None):
        self.calls = []
        self.script = list(script or [])
        for method in ("Promote", "Demote", "Follow", "Rejoin"):
            setattr(self, method, self._method(method))

    def _method(self, name):
        def call(request, timeout=None):
            self.calls.append((name, request))
            item = self.script.pop(0) if self.script else node_agent_pb2.ActionReply(changed=True, detail="ok")
            if isinstance(item, Exception):
                raise item
            return item
        return call


class FakeStubs:
    def __init__(self, addresses=None, **stubs):
        self.stubs = stubs
        self.addresses = addresses or {}

    def stub(self, name):
        return self.stubs.get(name)

    def address(self, name):
        return self.addresses.get(name, "")


class FakeDcs:
    def __init__(self, cas_ok=True, fail=False):
        self.calls = []
        self.cas_ok = cas_ok
        self.fail = fail

    def _rec(self, *call):
        if self.fail:
            raise DcsUnavailable("etcd down")
        self.calls.append(call)

    def revoke_leader_lease(self, term, deadline_s=None):
        self._rec("revoke", term)
        return True

    def set_sync(self, record, rev, deadline_s=None):
        self._rec("set_sync", record, rev)
        return self.cas_ok

    def put_history(self, record, deadline_s=None):
        self._rec("history", record)

    def clear_switchover(self, deadline_s=None):
        self._rec("clear_switchover")
        return True

    def put_failover_state(self, state, deadline_s=None):
        self._rec("failover_state", state)

    def clear_failover_state(self, deadline_s=None):
        self._rec("clear_failover_state")
        return True


VIEW = ClusterView(term=3, leader=LeaderRecord(name="a", term=3, timeline=3, data_address="127.0.0.1:8001"),
                   members=(MemberRecord(name="b", data_address="127.0.0.1:8002", timeline=3),),
                   sync_mod_revision=41)


def make(stubs=None, dcs=None):
    return Executor(dcs or FakeDcs(), stubs or FakeStubs(), "o1", rpc_timeout=0.1, retry_timeout=0.5)


def test_promote_sends_term():
    stub = FakeStub()
    out = make(FakeStubs(b=stub)).execute(Promote(member="b", term=4), VIEW)
    assert out.ok and out.changed
    assert stub.calls[0][0] == "Promote" and stub.calls[0][1].term == 4


def test_unavailable_is_retried_under_the_deadline():
    stub = FakeStub([FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connect failed"),
                     node_agent_pb2.ActionReply(changed=False, detail="already leader")])
    out = make(FakeStubs(b=stub)).execute(Promote(member="b", term=4), VIEW)
    assert out.ok and not out.changed and len(stub.calls) == 2


def test_unavailable_forever_gives_up():
    stub = FakeStub([FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")] * 1000)
    out = make(FakeStubs(b=stub)).execute(Promote(member="b", term=4), VIEW)
    assert not out.ok and "UNAVAILABLE" in out.detail and len(stub.calls) < 1000


def test_a_refused_port_is_not_retried():
    # Decided by a real TCP connect to the agent's (closed) port, not by the message.
    stub = FakeStub([FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")] * 1000)
    stubs = FakeStubs(addresses={"b": f"127.0.0.1:{free_port()}"}, b=stub)
    out = make(stubs).execute(Promote(member="b", term=4), VIEW)
    assert not out.ok and "refused the connection" in out.detail and len(stub.calls) == 1


def test_the_words_connection_refused_do_not_make_an_agent_dead():
    with socket.socket() as listening:          # the port accepts: the agent is not provably down
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        stub = FakeStub([FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect: Connection refused"),
                         node_agent_pb2.ActionReply(changed=True, detail="ok")])
        stubs = FakeStubs(addresses={"b": f"127.0.0.1:{listening.getsockname()[1]}"}, b=stub)
        out = make(stubs).execute(Promote(member="b", term=4), VIEW)
    assert out.ok and len(stub.calls) == 2


def test_stale_term_is_not_retried():
    stub = FakeStub([FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "stale term 3, current 4")])
    out = make(FakeStubs(b=stub)).execute(Promote(member="b", term=3), VIEW)
    assert not out.ok and "stale term" in out.detail and len(stub.calls) == 1


@pytest.mark.parametrize("action,method,expect", [
    pytest.param(Follow(member="b", leader="a", term=3), "Follow",
                 dict(term=3, leader_name="a", leader_data_address="127.0.0.1:8001", leader_timeline=3),
                 id="follow-uses-leader-record"),
    pytest.param(Rejoin(member="b", leader="a", term=3), "Rejoin",
                 dict(term=3, leader_name="a", leader_data_address="127.0.0.1:8001", allow_reclone=True),
                 id="rejoin"),
    pytest.param(DemoteForSwitchover(member="b", term=3), "Demote", dict(term=3), id="demote"),
])
def test_agent_actions(action, method, expect):
    stub = FakeStub()
    out = make(FakeStubs(b=stub)).execute(action, VIEW)
    assert out.ok
    name, request = stub.calls[0]
    assert name == method
    for key, value in expect.items():
        assert getattr(request, key) == value


def test_follow_a_leader_named_only_by_member_key():
    stub = FakeStub()
    out = make(FakeStubs(c=stub)).execute(Follow(member="c", leader="b", term=4), VIEW)
    assert out.ok and stub.calls[0][1].leader_data_address == "127.0.0.1:8002"


def test_missing_agent_or_leader_address_is_a_failed_outcome():
    assert not make().execute(Promote(member="zz", term=4), VIEW).ok
    out = make(FakeStubs(b=FakeStub())).execute(Follow(member="b", leader="nobody", term=4), VIEW)
    assert not out.ok and "nobody" in out.detail


def test_publish_sync_is_compare_and_swap_on_the_read_revision():
    dcs = FakeDcs()
    out = make(dcs=dcs).execute(PublishSync(method=SyncMethod.ANY, num=1, names=("b", "c"), leader="a",
                                            term=3), VIEW)
    assert out.ok
    (_, rec, rev), = dcs.calls
    assert rec == SyncRecord(method="any", num=1, names=("b", "c"), leader="a", term=3) and rev == 41
    refused = make(dcs=FakeDcs(cas_ok=False)).execute(
        PublishSync(method=SyncMethod.FIRST, num=1, names=("b",), leader="a", term=3), VIEW)
    assert not refused.ok and "compare-and-swap" in refused.detail


def test_publish_sync_already_published_is_a_noop():
    view = ClusterView(sync=SyncRecord(method="first", num=1, names=("b",), leader="a", term=3))
    dcs = FakeDcs()
    out = make(dcs=dcs).execute(PublishSync(method=SyncMethod.FIRST, num=1, names=("b",), leader="a",
                                            term=3), view)
    assert out.ok and not out.changed and dcs.calls == []


def test_history_carries_the_rpo_receipt_and_orchestrator():
    dcs = FakeDcs()
    entry = HistoryEntry(term=4, kind=OperationKind.FAILOVER, old_leader="a", new_leader="b",
                         last_primary_lsn=1000, promoted_lsn=900, bytes_possibly_lost=100, started_at=1.0,
                         finished_at=2.0, candidates=(Candidate(name="b", eligible=True, rank=1),),
                         reason="leader gone", timeline=4)
    assert make(dcs=dcs).execute(RecordHistory(entry=entry), VIEW).ok
    (_, rec), = dcs.calls
    assert (rec.term, rec.kind, rec.bytes_possibly_lost, rec.orchestrator) == (4, "failover", 100, "o1")
    assert rec.candidates[0]["name"] == "b" and rec.candidates[0]["rank"] == 1


def test_etcd_actions_and_etcd_down():
    dcs = FakeDcs()
    ex = make(dcs=dcs)
    state = FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=4, new_leader="b")
    for action in (RevokeLeaderLease(expected_term=3, leader="a", reason="dead"), ClearSwitchover(),
                   SaveFailoverState(state=state), ClearFailoverState()):
        assert ex.execute(action, VIEW).ok
    assert [c[0] for c in dcs.calls] == ["revoke", "clear_switchover", "failover_state",
                                         "clear_failover_state"]
    assert dcs.calls[2][1]["term"] == 4
    down = make(dcs=FakeDcs(fail=True)).execute(ClearFailoverState(), VIEW)
    assert not down.ok and "etcd down" in down.detail


def test_wait_does_nothing():
    out = make().execute(Wait(reason="catching up"), VIEW)
    assert out.ok and not out.changed and out.detail == "catching up"
