"""Dcs.watch_prefix against a real etcd, including restarts and crashes."""
from __future__ import annotations

import threading
import time

import pytest

from walrus_ha.common.dcs import Dcs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Counter:
    """A thread-safe callback that counts its calls."""

    def __init__(self):
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self):
        with self._lock:
            self.calls += 1


def poll(predicate, deadline_s: float = 20.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"condition not met within {deadline_s}s")


def test_callback_on_every_change_and_not_after_cancel(etcd_session, cluster_name):
    with Dcs([etcd_session.endpoint], cluster_name) as dcs, Dcs([etcd_session.endpoint], "elsewhere") as other:
        seen = Counter()
        cancel = dcs.watch_prefix(seen)
        assert seen.calls == 0                       # established before returning: nothing to re-read
        dcs.put(dcs.keys.config, {"a": 1})
        poll(lambda: seen.calls >= 1)
        lease = dcs.grant_lease(1)
        dcs.put(dcs.keys.pause, True)
        poll(lambda: seen.calls >= 2)
        other.put(other.keys.config, {"b": 1})      # another cluster's keys: no call
        cancel()
        cancel()
        after = seen.calls
        dcs.put(dcs.keys.config, {"a": 2})
        dcs.revoke_lease(lease)
        time.sleep(0.5)                              # give a wrongly surviving watch time to fire
        assert seen.calls == after
    assert not [t for t in threading.enumerate() if cluster_name in t.name]   # the thread ended


def test_callback_error_does_not_kill_the_watch(etcd_session, cluster_name):
    with Dcs([etcd_session.endpoint], cluster_name) as dcs:
        seen = Counter()

        def flaky():
            seen()
            raise RuntimeError("reader bug")

        dcs.watch_prefix(flaky)
        dcs.put(dcs.keys.config, 1)
        poll(lambda: seen.calls >= 1)
        dcs.put(dcs.keys.config, 2)
        poll(lambda: seen.calls >= 2)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_watch_survives_etcd_restart(etcd, how):
    with Dcs([etcd.endpoint], "c", timeout_s=1.0) as dcs, Dcs([etcd.endpoint], "c", timeout_s=1.0) as writer:
        seen = Counter()
        dcs.watch_prefix(seen)
        writer.put(writer.keys.config, 1)
        poll(lambda: seen.calls >= 1)
        (etcd.stop if how == "stop" else etcd.kill)()
        before = seen.calls
        etcd.start()
        # Re-established: the callback is called so the reader re-reads what it may have missed.
        poll(lambda: seen.calls > before)
        reestablished = seen.calls
        writer.put(writer.keys.config, 2, deadline_s=10)
        poll(lambda: seen.calls > reestablished)      # and new changes still arrive


def test_watch_started_while_etcd_down_calls_back_once_up(etcd):
    etcd.stop()
    with Dcs([etcd.endpoint], "c", timeout_s=0.5) as dcs:
        seen = Counter()
        dcs.watch_prefix(seen)                         # does not raise; keeps trying
        etcd.start()
        poll(lambda: seen.calls >= 1)
