"""``walrus ctl`` pieces for restart / reinit / scheduled switchover that
need no cluster: ``--scheduled`` parsing, the pending-request line and the
reinit progress rule."""
from __future__ import annotations

import datetime

import pytest

from walrus_ha.protos import cluster_pb2
from walrus_ha.tools.ctl_ops import reinit_progress
from walrus_ha.tools.ctl_views import parse_when, scheduled_line

UTC2 = datetime.timezone(datetime.timedelta(hours=2))
NOW = datetime.datetime(2026, 12, 3, 20, 0, 0, tzinfo=UTC2)


@pytest.mark.parametrize("text, want", [
    ("now", 0.0),
    ("21:30", datetime.datetime(2026, 12, 3, 21, 30, tzinfo=UTC2)),
    ("19:59", datetime.datetime(2026, 12, 4, 19, 59, tzinfo=UTC2)),       # passed today: tomorrow
    ("20:00:30", datetime.datetime(2026, 12, 3, 20, 0, 30, tzinfo=UTC2)),
    ("2026-12-03T19:30:00+00:00", datetime.datetime(2026, 12, 3, 19, 30, tzinfo=datetime.UTC)),
    ("2026-12-03T19:30:00Z", datetime.datetime(2026, 12, 3, 19, 30, tzinfo=datetime.UTC)),
    ("2026-12-03 22:00", datetime.datetime(2026, 12, 3, 22, 0, tzinfo=UTC2)),   # no zone: now's zone
], ids=["now", "hh-mm", "hh-mm-tomorrow", "hh-mm-ss", "iso-offset", "iso-z", "iso-naive"])
def test_parse_when(text, want) -> None:
    assert parse_when(text, NOW) == (want if isinstance(want, float) else want.timestamp())


@pytest.mark.parametrize("text", ["25:00", "12:61", "tomorrow", "2026-12-03T19:00:00+02:00", ""])
def test_parse_when_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_when(text, NOW)


def test_scheduled_line() -> None:
    assert scheduled_line(cluster_pb2.ListMembersReply(), 0) == ""
    at = NOW.timestamp() + 90
    line = scheduled_line(cluster_pb2.ListMembersReply(switchover_pending=True, switchover_candidate="b",
                                                       switchover_scheduled_at=at), NOW.timestamp())
    assert line.startswith("switchover to b scheduled at ") and "(in 90s;" in line
    assert "best standby pending" in scheduled_line(cluster_pb2.ListMembersReply(switchover_pending=True), 0)


@pytest.mark.parametrize("member, done", [
    (cluster_pb2.Member(name="b", reachable=True, needs_reclone=True, streaming=True, state="standby"), False),
    (cluster_pb2.Member(name="b", reachable=True, state="rejoining"), False),
    (cluster_pb2.Member(name="b", reachable=False, streaming=True), False),
    (cluster_pb2.Member(name="b", reachable=True, streaming=True, upstream="a", state="standby"), True),
    (None, False),
], ids=["marked", "recloning", "unreachable", "streaming-again", "gone"])
def test_reinit_progress(member, done) -> None:
    assert reinit_progress(member)[1] is done
