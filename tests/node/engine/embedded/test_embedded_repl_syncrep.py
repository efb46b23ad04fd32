"""Unit tests of the pure sync-rep and slot logic (no processes)."""
import threading

import pytest

from walrus_ha.common.errors import Fenced
from walrus_ha.node.engine.base import CommitLevel, SyncSpec
from walrus_ha.node.engine.embedded.slots import Slot, SlotStore, plan_retention
from walrus_ha.node.engine.embedded.syncrep import StandbyPosition, SyncRep, confirmed_lsn, sync_states

P = StandbyPosition
ON, WRITE, APPLY = CommitLevel.ON, CommitLevel.REMOTE_WRITE, CommitLevel.REMOTE_APPLY


@pytest.mark.parametrize("spec,positions,level,want", [
    ("FIRST 1 (a, b)", {"a": P("a", 30, 20, 10), "b": P("b", 90, 90, 90)}, ON, 20),
    ("FIRST 1 (a, b)", {"b": P("b", 90, 80, 70)}, ON, 80),
    ("FIRST 1 (a, b)", {"b": P("b", 90, 80, 70)}, WRITE, 90),
    ("FIRST 1 (a, b)", {"b": P("b", 90, 80, 70)}, APPLY, 70),
    ("FIRST 2 (a, b, c)", {"a": P("a", 0, 50), "c": P("c", 0, 40)}, ON, 40),
    ("FIRST 2 (a, b, c)", {"c": P("c", 0, 40)}, ON, None),
    ("ANY 1 (a, b)", {"a": P("a", 0, 10), "b": P("b", 0, 60)}, ON, 60),
    ("ANY 2 (a, b, c)", {"a": P("a", 0, 10), "b": P("b", 0, 60), "c": P("c", 0, 30)}, ON, 30),
    ("ANY 2 (a, b)", {"a": P("a", 0, 10), "x": P("x", 0, 99)}, ON, None),
    ("FIRST 1 (a)", {}, ON, None),
], ids=["first-uses-first-connected", "first-skips-missing", "remote-write", "remote-apply",
        "first2", "first2-missing", "any1-max", "any2-second", "any-ignores-outsiders", "none"])
def test_confirmed_lsn(spec, positions, level, want):
    assert confirmed_lsn(SyncSpec.parse(spec), positions, level) == want


def test_sync_states():
    assert sync_states(SyncSpec.parse("FIRST 1 (a, b)"), ["b", "a", "z"]) == {
        "a": "sync", "b": "potential", "z": "async"}
    assert sync_states(SyncSpec.parse("ANY 1 (a, b)"), ["b"]) == {"b": "quorum"}
    assert sync_states(SyncSpec(), ["b"]) == {"b": "async"}


def test_waiter_released_by_feedback():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))
    done = []
    t = threading.Thread(target=lambda: done.append(rep.wait(100, ON)))
    t.start()
    rep.update(P("b", 100, 50, 0))
    t.join(0.2)
    assert not done
    rep.update(P("b", 100, 100, 0))
    t.join(10)
    assert done == [True]


def test_wait_without_standby_times_out_and_never_acks():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))
    assert rep.wait(1, ON, timeout=0.05) is False
    assert rep.wait(1, CommitLevel.LOCAL) is True


def test_fence_fails_pending_waiters():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))
    errors = []

    def waiter():
        try:
            rep.wait(10, ON)
        except Fenced as exc:
            errors.append(str(exc))
    t = threading.Thread(target=waiter)
    t.start()
    rep.fence("lost the leader lease")
    t.join(10)
    assert errors and "lost the leader lease" in errors[0]
    with pytest.raises(Fenced):
        rep.wait(1, CommitLevel.LOCAL)


def test_lease_deadline_passes_during_wait():
    now = [0.0]
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"), clock=lambda: now[0])
    errors = []

    def waiter():
        try:
            rep.wait(10, ON)
        except Fenced as exc:
            errors.append(exc)
    t = threading.Thread(target=waiter)
    t.start()
    now[0] = 5.0
    rep.set_lease_deadline(4.0)
    t.join(10)
    assert errors
    # even a satisfied position is not acknowledged past the deadline
    rep.update(P("b", 99, 99, 99))
    with pytest.raises(Fenced):
        rep.wait(10, ON)


def test_plan_retention_marks_lost_past_cap():
    slots = [Slot("a", 100), Slot("b", 900), Slot("c", 5, lost=True)]
    plan = plan_retention(slots, checkpoint_lsn=950, write_lsn=1000, max_keep=500)
    assert plan.newly_lost == ("a",)
    assert plan.keep_from_lsn == 900
    assert plan_retention(slots, 950, 1000, -1).keep_from_lsn == 100


def test_slot_store_persists(tmp_path):
    store = SlotStore(str(tmp_path))
    store.ensure("b", 10)
    store.advance("b", 50)
    store.advance("b", 40)
    store.save()
    store.ensure("c", 7)
    store.mark_lost(["c"])
    again = SlotStore(str(tmp_path))
    assert again.get("b") == Slot("b", 50)
    assert again.get("c").lost


def test_lag_tracker_measures_time_to_confirmation():
    from walrus_ha.node.engine.embedded.sender import LagTracker
    now = [10.0]
    lag = LagTracker(clock=lambda: now[0])
    lag.sent(100)
    now[0] = 10.5
    lag.sent(200)
    now[0] = 11.0
    lag.confirm(write=200, flush=100, replay=0)
    assert lag.lag.write_s == pytest.approx(0.5)     # 200 sent at 10.5
    assert lag.lag.flush_s == pytest.approx(1.0)     # 100 sent at 10.0
    assert lag.lag.replay_s == 0.0                   # nothing confirmed yet
    now[0] = 12.0
    lag.confirm(write=200, flush=200, replay=200)
    assert lag.lag.flush_s == pytest.approx(1.5) and lag.lag.replay_s == pytest.approx(1.5)


def test_signal_waits_and_resets():
    from walrus_ha.node.engine.embedded.syncrep import _Signal
    s = _Signal()
    assert not s.wait(0.01)
    s.set()
    s.set()
    assert s.is_set() and s.wait(None) and s.wait(0)
    s.clear()
    assert not s.is_set() and not s.wait(0.01)
    t = threading.Timer(0.05, s.set)
    t.start()
    assert s.wait(10)
    t.join()


def _hist(tli, *entries):
    from walrus_ha.node.engine.embedded.timeline import HistoryEntry, TimelineHistory
    return TimelineHistory(tli, tuple(HistoryEntry(t, lsn) for t, lsn in entries))


@pytest.mark.parametrize("req,slot,history,needle,reclone", [
    ((100, 1, 9), None, _hist(1), "stale term", False),
    ((100, 1, 0), Slot("b", 50, lost=True), _hist(1), "is lost", True),
    ((5000, 1, 0), None, _hist(1), "past this primary's WAL end", True),
    ((10, 1, 0), None, _hist(1), "has been removed", True),
    ((100, 3, 0), None, _hist(2, (1, 80)), "this primary is stale", False),
    ((100, 1, 0), None, _hist(2, (1, 80)), "diverged", False),
    ((100, 7, 0), None, _hist(9, (1, 80), (8, 90)), "not in this primary's history", True),
    ((80, 1, 0), None, _hist(2, (1, 80)), None, False),
    ((100, 2, 0), Slot("b", 100), _hist(2, (1, 80)), None, False),
], ids=["stale-term", "lost-slot", "ahead", "removed", "newer-timeline", "diverged", "foreign-timeline",
        "at-fork-ok", "same-timeline-ok"])
def test_check_start(req, slot, history, needle, reclone):
    from walrus_ha.node.engine.embedded.sender import SenderRefused, StartRequest, check_start
    args = (StartRequest("b", *req), 5, 1000, 20, slot, history)
    if needle is None:
        check_start(*args)
        return
    with pytest.raises(SenderRefused) as err:
        check_start(*args)
    assert needle in str(err.value) and err.value.needs_reclone is reclone
