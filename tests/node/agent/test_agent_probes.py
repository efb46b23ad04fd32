"""The HTTP API's and role health's decisions (node/agent/probes.py): pure,
table-driven, no process."""
from __future__ import annotations

from dataclasses import replace

import pytest

from walrus_ha.common.records import ClusterView, LeaderRecord, MemberRecord, SyncRecord
from walrus_ha.common.status import Role
from walrus_ha.node.agent import probes
from walrus_ha.node.agent.status import AgentState, AgentStatus
from walrus_ha.node.engine.base import EngineStatus

PRIMARY = probes.MemberFacts(role=Role.PRIMARY, state=AgentState.PRIMARY, holds_leader=True, fenced=False,
                             lease_valid=True, streaming=False, needs_reclone=False, in_sync_set=False,
                             lag_bytes=None, loop_age_s=0.1, loop_limit_s=6.0)
REPLICA = probes.MemberFacts(role=Role.STANDBY, state=AgentState.STANDBY, holds_leader=False, fenced=True,
                             lease_valid=False, streaming=True, needs_reclone=False, in_sync_set=False,
                             lag_bytes=1000, loop_age_s=0.1, loop_limit_s=6.0)
SYNC_REPLICA = replace(REPLICA, in_sync_set=True)
FENCED_PRIMARY = replace(PRIMARY, fenced=True)
EXPIRED_LEASE = replace(PRIMARY, lease_valid=False)
NO_KEY = replace(PRIMARY, holds_leader=False, state=AgentState.FENCED)
NOT_STREAMING = replace(REPLICA, streaming=False)
RECLONE = replace(REPLICA, needs_reclone=True)
STOPPED = replace(REPLICA, role=Role.STOPPED, streaming=False)
STUCK_LOOP = replace(REPLICA, loop_age_s=7.0)
CLONING = replace(STOPPED, state=AgentState.CLONING, loop_age_s=60.0)
STOPPING = replace(PRIMARY, stopping=True)
UNKNOWN_LAG = replace(REPLICA, lag_bytes=None)

CASES = [
    # (id, path, query, facts, code)
    ("primary /primary", "/primary", {}, PRIMARY, 200),
    ("primary /", "/", {}, PRIMARY, 200),
    ("primary /leader", "/leader", {}, PRIMARY, 200),
    ("primary /master", "/master", {}, PRIMARY, 200),
    ("primary /read-write", "/read-write", {}, PRIMARY, 200),
    ("primary trailing slash", "/primary/", {}, PRIMARY, 200),
    ("fenced primary", "/primary", {}, FENCED_PRIMARY, 503),
    ("lease past deadline", "/primary", {}, EXPIRED_LEASE, 503),
    ("primary data without key", "/primary", {}, NO_KEY, 503),
    ("stopping primary", "/primary", {}, STOPPING, 503),
    ("replica /primary", "/primary", {}, REPLICA, 503),
    ("replica /", "/", {}, REPLICA, 503),
    ("primary /replica", "/replica", {}, PRIMARY, 503),
    ("replica /replica", "/replica", {}, REPLICA, 200),
    ("not streaming", "/replica", {}, NOT_STREAMING, 503),
    ("needs re-clone", "/replica", {}, RECLONE, 503),
    ("lag under bytes", "/replica", {"lag": ["1000"]}, REPLICA, 200),
    ("lag over bytes", "/replica", {"lag": ["999"]}, REPLICA, 503),
    ("lag under 10MB", "/replica", {"lag": ["10MB"]}, REPLICA, 200),
    ("lag unknown with threshold", "/replica", {"lag": ["10MB"]}, UNKNOWN_LAG, 503),
    ("lag unknown without threshold", "/replica", {}, UNKNOWN_LAG, 200),
    ("lag unreadable", "/replica", {"lag": ["lots"]}, REPLICA, 400),
    ("read-only primary", "/read-only", {}, PRIMARY, 200),
    ("read-only replica", "/read-only", {}, REPLICA, 200),
    ("read-only replica over lag", "/read-only", {"lag": ["1kB"]}, replace(REPLICA, lag_bytes=2048), 503),
    ("read-only fenced", "/read-only", {}, FENCED_PRIMARY, 503),
    ("sync member", "/sync", {}, SYNC_REPLICA, 200),
    ("sync non-member", "/sync", {}, REPLICA, 503),
    ("sync primary", "/sync", {}, PRIMARY, 503),
    ("async non-member", "/async", {}, REPLICA, 200),
    ("async member", "/async", {}, SYNC_REPLICA, 503),
    ("health primary", "/health", {}, PRIMARY, 200),
    ("health fenced primary", "/health", {}, FENCED_PRIMARY, 200),
    ("health replica", "/health", {}, REPLICA, 200),
    ("health stopped", "/health", {}, STOPPED, 503),
    ("liveness", "/liveness", {}, REPLICA, 200),
    ("liveness stuck loop", "/liveness", {}, STUCK_LOOP, 503),
    ("liveness long clone", "/liveness", {}, CLONING, 200),
    ("liveness stopping", "/liveness", {}, STOPPING, 503),
    ("readiness primary", "/readiness", {}, PRIMARY, 200),
    ("readiness replica", "/readiness", {}, REPLICA, 200),
    ("readiness stopped", "/readiness", {}, STOPPED, 503),
    ("readiness fenced", "/readiness", {}, FENCED_PRIMARY, 503),
    ("status always", "/status", {}, STOPPED, 200),
    ("unknown path", "/nope", {}, PRIMARY, 404),
]


@pytest.mark.parametrize("path,query,facts,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_answer(path, query, facts, code):
    assert probes.answer(path, query, facts) == code


@pytest.mark.parametrize("text,size", [("0", 0), ("123", 123), ("16kB", 16384), ("10MB", 10 << 20),
                                       ("10mb", 10 << 20), ("1 GB", 1 << 30), ("2TB", 2 << 40), ("5B", 5)])
def test_parse_size(text, size):
    assert probes.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5MB", "10XB", "MB", "ten"])
def test_parse_size_refuses(text):
    with pytest.raises(probes.BadQuery):
        probes.parse_size(text)


def _status(name, role, flush, streaming=True, state=AgentState.STANDBY):
    return AgentStatus(name=name, cluster="c", agent_address="a", data_address="d",
                       engine=EngineStatus(role=role, flush_lsn=flush, replay_lsn=flush - 10, streaming=streaming),
                       holds_leader=False, leader_term=3, lease_remaining_s=0.0, state=state)


def _view(sync_names=(), sync_leader="n1"):
    return ClusterView(revision=1, leader=LeaderRecord(name="n1", term=3),
                       members=(MemberRecord(name="n1", flush_lsn=5000), MemberRecord(name="n2", flush_lsn=4000)),
                       sync=SyncRecord(num=1, names=tuple(sync_names), leader=sync_leader, term=3)
                       if sync_names else None)


def _facts(status, view):
    return probes.facts_from(status, view, holds_leader=False, lease_valid=False, loop_age_s=0.0,
                             loop_limit_s=1.0, stopping=False)


def test_lag_is_leader_flush_minus_own_position():
    assert _facts(_status("n2", Role.STANDBY, 4000), _view()).lag_bytes == 1000
    assert _facts(_status("n2", Role.STANDBY, 6000), _view()).lag_bytes == 0      # leader record older


def test_lag_unknown_without_leader_record_or_on_a_primary():
    assert _facts(_status("n2", Role.STANDBY, 4000), None).lag_bytes is None
    assert _facts(_status("n1", Role.PRIMARY, 5000, streaming=False), _view()).lag_bytes is None


def test_sync_set_membership_needs_the_current_leaders_record():
    assert _facts(_status("n2", Role.STANDBY, 4000), _view(["n2"])).in_sync_set
    assert not _facts(_status("n2", Role.STANDBY, 4000), _view(["n3"])).in_sync_set
    assert not _facts(_status("n2", Role.STANDBY, 4000), _view(["n2"], sync_leader="n0")).in_sync_set


def test_no_status_yet_passes_only_status():
    f = _facts(None, _view())
    assert [c for c in probes.Check if probes.passes(c, f)] == [probes.Check.LIVENESS, probes.Check.STATUS]
