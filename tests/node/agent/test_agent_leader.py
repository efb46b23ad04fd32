"""Lease deadline arithmetic and the renewal thread, with a fake clock."""
import threading

import pytest

from walrus_ha.common.errors import DcsUnavailable, LeaseLost
from walrus_ha.node.agent import leader as L

TTL, MARGIN = 9.0, 1.0   # interval 3s (holder 8/6 s), retry_wait 0.75s, deadline = sent + 8


def st(confirmed=0.0, attempted=None, holding=True, fenced=False):
    return L.LeaseState(TTL, MARGIN, confirmed, confirmed if attempted is None else attempted,
                        holding, fenced)


@pytest.mark.parametrize("state,now,action,wake", [
    pytest.param(st(), 1.0, L.LeaseAction.WAIT, 8.0 / 6, id="fresh-holder-waits-for-its-period"),
    pytest.param(st(holding=False), 1.0, L.LeaseAction.WAIT, 3.0, id="fresh-waits-for-interval"),
    pytest.param(st(fenced=True), 1.0, L.LeaseAction.WAIT, 3.0, id="fenced-holder-waits-for-interval"),
    pytest.param(st(), 3.0, L.LeaseAction.RENEW, 3.0, id="interval-elapsed-renews"),
    pytest.param(st(attempted=3.0), 3.5, L.LeaseAction.WAIT, 3.75, id="failed-attempt-spaces-retry"),
    pytest.param(st(attempted=3.0), 3.75, L.LeaseAction.RENEW, 3.75, id="retry-after-wait"),
    pytest.param(st(attempted=7.9), 7.95, L.LeaseAction.WAIT, 8.0, id="wakes-at-deadline-not-later"),
    pytest.param(st(attempted=7.9), 8.0, L.LeaseAction.FENCE, 8.0, id="deadline-reached-fences"),
    pytest.param(st(attempted=7.9), 30.0, L.LeaseAction.FENCE, 30.0, id="woke-late-fences-first"),
    pytest.param(st(attempted=7.9, fenced=True), 30.0, L.LeaseAction.RENEW, 30.0, id="fenced-once-then-renews"),
    pytest.param(st(attempted=7.9, holding=False), 30.0, L.LeaseAction.RENEW, 30.0, id="not-holding-never-fences"),
    pytest.param(st(attempted=2.9, holding=False), 2.95, L.LeaseAction.WAIT, 3.65, id="not-holding-no-deadline-wake"),
])
def test_plan(state, now, action, wake):
    p = L.plan(state, now)
    assert p.action is action
    assert p.wake_at == pytest.approx(wake)


@pytest.mark.parametrize("sent,ttl,margin,deadline", [
    (100.0, 10.0, 1.0, 109.0), (0.0, 3.0, 0.5, 2.5), (5.0, 1.0, 0.0, 6.0)])
def test_deadline_counts_from_send_time(sent, ttl, margin, deadline):
    assert L.lease_deadline(sent, ttl, margin) == pytest.approx(deadline)
    s = L.renewed(L.new_state(ttl, margin, 0.0), sent)
    assert s.deadline == pytest.approx(deadline)


def test_late_answer_to_old_renewal_never_moves_deadline_back():
    s = L.renewed(st(), 6.0)
    assert L.renewed(s, 3.0).deadline == pytest.approx(14.0)


def test_renewal_after_fence_clears_fenced():
    s = L.renewed(st(fenced=True), 10.0)
    assert not s.fenced and s.deadline == pytest.approx(18.0)


@pytest.mark.parametrize("ttl,margin", [(3.0, 3.0), (3.0, -0.1)])
def test_bad_margin_rejected(ttl, margin):
    with pytest.raises(ValueError):
        L.new_state(ttl, margin, 0.0)


def test_remaining():
    assert st(confirmed=2.0).remaining(5.0) == pytest.approx(6.0)
    assert st(confirmed=2.0).remaining(50.0) == 0.0


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeDcs:
    """Answers scripted per call; advances the fake clock by ``latency``."""
    def __init__(self, clock, script):
        self.clock, self.script, self.calls = clock, list(script), []
        self.done = threading.Event()

    def refresh_lease(self, lease_id, deadline_s=None):
        self.calls.append((lease_id, self.clock.t))
        if not self.script:
            self.done.set()
            raise DcsUnavailable("script over")
        latency, outcome = self.script.pop(0)
        self.clock.t += latency
        if not self.script:
            self.done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return 9.0


def run_keeper(script, holding=True):
    clock = FakeClock()
    dcs = FakeDcs(clock, script)
    events = []
    k = L.LeaseKeeper(dcs, TTL, MARGIN, clock=clock,
                      on_renewed=lambda d: events.append(("renewed", d)),
                      on_deadline=lambda r: events.append(("fence", clock.t)),
                      on_lost=lambda r: events.append(("lost", clock.t)))
    k.reset(7, 0.0)
    k.set_holding(holding)
    # The fake clock only moves inside refresh_lease, so make WAITs jump it.
    orig_wait = k._wait

    def jump(seconds):
        if seconds is not None:
            clock.t += max(seconds, 0.0)
        if dcs.done.is_set():
            orig_wait(0.01)
    k._wait = jump
    k.start()
    assert dcs.done.wait(10)
    k.stop()
    return dcs, events, k


def test_keeper_extends_deadline_from_send_time():
    dcs, events, _ = run_keeper([(2.0, "ok")])
    # sent at 8/6 (the holder's period), answered 2 s later: deadline = 8/6 + 9 - 1
    assert dcs.calls[0] == (7, pytest.approx(8.0 / 6))
    assert events[0] == ("renewed", pytest.approx(8.0 / 6 + 8.0))


def test_keeper_holding_renews_until_the_deadline():
    clock = FakeClock()
    rec = []
    asked = threading.Event()

    class Dcs:
        def refresh_lease(self, lease_id, deadline_s=None):
            rec.append((clock.t, deadline_s))
            asked.set()
            raise LeaseLost("stop")
    k = L.LeaseKeeper(Dcs(), TTL, MARGIN, clock=clock, on_renewed=print, on_deadline=print,
                      on_lost=lambda r: None)
    k.reset(7, 0.0)
    k.set_holding(True)
    k._wait = lambda seconds: setattr(clock, "t", clock.t + max(seconds or 0.0, 0.0))
    k.start()
    assert asked.wait(10)
    k.stop()
    # Sent at 8/6; in flight up to the deadline 8 (not just a period): an etcd
    # election does not cost a give-up and a retry_wait.
    assert rec == [(pytest.approx(8.0 / 6), pytest.approx(8.0 - 8.0 / 6))]


def test_keeper_fences_when_renewals_fail_until_deadline():
    fail = (0.0, DcsUnavailable("down"))
    _, events, _ = run_keeper([fail] * 12)
    fences = [e for e in events if e[0] == "fence"]
    assert fences and fences[0][1] == pytest.approx(8.0)
    assert not [e for e in events if e[0] == "renewed"]


def test_keeper_reports_lost_lease_and_idles():
    _, events, k = run_keeper([(0.0, LeaseLost("expired"))])
    assert events == [("lost", pytest.approx(8.0 / 6))]
    assert k.lease_id is None and k.snapshot() is None


def test_keeper_not_holding_never_fences():
    fail = (0.0, DcsUnavailable("down"))
    _, events, _ = run_keeper([fail] * 12, holding=False)
    assert events == []


def test_renew_now_returns_deadline():
    clock = FakeClock()
    clock.t = 4.0
    dcs = FakeDcs(clock, [(0.5, "ok")])
    k = L.LeaseKeeper(dcs, TTL, MARGIN, clock=clock, on_renewed=print, on_deadline=print, on_lost=print)
    k.reset(1, 0.0)
    assert k.renew_now() == pytest.approx(12.0)
    k.reset(None)
    with pytest.raises(LeaseLost):
        k.renew_now()


# -- property: the deadline never outlives what etcd granted ------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st_  # noqa: E402

events = st_.lists(st_.tuples(st_.floats(0, 5), st_.booleans(), st_.floats(0, 3)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(events)
def test_deadline_is_bounded_by_last_confirmed_send(evs):
    """Drive plan/renewed/attempted with random delays, outcomes and latencies.

    Invariants: (1) the deadline is at most (send time of the newest renewal
    etcd confirmed) + ttl - margin, so it never outlives the lease; (2) while
    holding, ``plan`` never answers WAIT or RENEW past the deadline unless
    the miss was already fenced.
    """
    now = 0.0
    s = L.holding(L.new_state(TTL, MARGIN, 0.0), True)
    newest_ok_send = 0.0
    for delay, ok, latency in evs:
        now += delay
        p = L.plan(s, now)
        if s.holding and not s.fenced and now >= s.deadline:
            assert p.action is L.LeaseAction.FENCE
            s = L.fenced(s)
            continue
        if p.action is L.LeaseAction.RENEW:
            sent = now
            now += latency
            if ok:
                s = L.renewed(s, sent)
                newest_ok_send = max(newest_ok_send, sent)
            else:
                s = L.attempted(s, sent)
        assert s.deadline <= newest_ok_send + TTL - MARGIN + 1e-9
        if p.action is L.LeaseAction.WAIT and s.holding and not s.fenced:
            assert p.wake_at <= s.deadline + 1e-9
