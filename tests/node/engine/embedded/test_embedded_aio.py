"""The embedded engine's event loop (``aio.py``) and what runs on it:
``LoopSignal`` / ``LoopThread``, ``SyncRep.wait_async``, WAL flush listeners
and ``EmbeddedEngine.write_async``.

No timing assertions: every timeout below is only a hang guard (the machine
is small and shared). Waits that must still be pending are checked after a
few loop turns, not after a sleep.
"""
from __future__ import annotations

import asyncio
import os
import threading

import pytest

from walrus_ha.common.errors import Fenced, WrongRole
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import CommitLevel, Role, SyncSpec
from walrus_ha.node.engine.embedded import EmbeddedEngine
from walrus_ha.node.engine.embedded import wal as wal_mod
from walrus_ha.node.engine.embedded.aio import LoopSignal, LoopThread, _Poster
from walrus_ha.node.engine.embedded.syncrep import StandbyPosition, SyncRep
from walrus_ha.node.engine.embedded.wal import Wal

GUARD_S = 10.0          # hang guard only, never a latency bound
ON = CommitLevel.ON
P = StandbyPosition


def in_thread(fn) -> None:
    """Run ``fn`` in another thread and wait for it (a cross-thread call)."""
    errors = []

    def body():
        try:
            fn()
        except BaseException as exc:    # surface it in the test thread
            errors.append(exc)
    t = threading.Thread(target=body)
    t.start()
    t.join(GUARD_S)
    assert not t.is_alive(), "helper thread hung"
    if errors:
        raise errors[0]


async def turns(n: int = 5) -> None:
    """Let the loop run ``n`` iterations (posted callbacks get to run)."""
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
def loop_thread():
    lt = LoopThread("test-loop")
    yield lt
    lt.stop()


# ----------------------------------------------------------------- LoopSignal
def test_signal_set_from_another_thread_wakes_wait_none():
    async def main():
        sig = LoopSignal()
        waiter = asyncio.ensure_future(sig.wait(None))
        await turns(1)                  # the waiter now awaits its future
        assert not waiter.done()
        in_thread(sig.set)
        return await asyncio.wait_for(waiter, GUARD_S)
    assert asyncio.run(main()) is True


def test_signal_set_before_wait_returns_true_at_once():
    async def main():
        sig = LoopSignal()
        in_thread(sig.set)
        assert sig.is_set()
        # timeout=0: True only if wait saw the flag without sleeping
        return await sig.wait(0), await sig.wait(None)
    assert asyncio.run(main()) == (True, True)


def test_signal_wait_times_out_when_never_set():
    async def main():
        sig = LoopSignal()
        return await asyncio.wait_for(sig.wait(0.02), GUARD_S), sig.is_set()
    assert asyncio.run(main()) == (False, False)


def test_signal_clear_then_wait_times_out():
    async def main():
        sig = LoopSignal()
        sig.set()
        assert await sig.wait(None) is True
        sig.clear()
        return await asyncio.wait_for(sig.wait(0.02), GUARD_S)
    assert asyncio.run(main()) is False


def test_signal_set_on_the_loop_thread_wakes_waiter():
    async def main():
        sig = LoopSignal()
        waiter = asyncio.ensure_future(sig.wait(None))
        await turns(1)
        asyncio.get_running_loop().call_soon(sig.set)
        return await asyncio.wait_for(waiter, GUARD_S)
    assert asyncio.run(main()) is True


def test_many_cross_thread_sets_cost_one_wakeup_and_wake_all(loop_thread):
    """Signals set while the loop is busy are drained by one posted call."""
    loop = loop_thread.loop
    drains = []
    real = loop.call_soon_threadsafe

    def spy(callback, *args, **kw):
        if getattr(callback, "__func__", None) is _Poster._drain:
            drains.append(callback)
        return real(callback, *args, **kw)
    loop.call_soon_threadsafe = spy
    busy, release = threading.Event(), threading.Event()
    sigs: list[LoopSignal] = []

    async def scenario():
        sigs.extend(LoopSignal() for _ in range(20))
        waiters = [asyncio.ensure_future(s.wait(GUARD_S)) for s in sigs]
        await turns(1)                  # every waiter awaits its future
        busy.set()
        release.wait(GUARD_S)           # block the loop: no turn until released
        return await asyncio.gather(*waiters)
    fut = asyncio.run_coroutine_threadsafe(scenario(), loop)
    assert busy.wait(GUARD_S)
    for s in sigs:                      # all between two loop turns
        s.set()
    release.set()
    assert fut.result(GUARD_S) == [True] * 20
    assert len(drains) == 1


def test_signal_set_after_loop_closed_does_not_raise():
    lt = LoopThread("test-loop-closed")
    sigs = lt.run(_make_signals(2), timeout=GUARD_S)
    lt.stop()
    assert lt.loop.is_closed()
    for s in sigs:
        s.set()                         # off-loop: posts to a closed loop
        assert s.is_set()


async def _make_signals(n: int) -> list[LoopSignal]:
    return [LoopSignal() for _ in range(n)]


# ----------------------------------------------------------------- LoopThread
def test_loop_thread_run_returns_result_and_propagates_exception(loop_thread):
    async def ok():
        await asyncio.sleep(0)
        return threading.current_thread().name

    async def boom():
        await asyncio.sleep(0)
        raise ValueError("boom")
    assert loop_thread.run(ok(), timeout=GUARD_S) == "test-loop"
    with pytest.raises(ValueError, match="boom"):
        loop_thread.run(boom(), timeout=GUARD_S)
    assert loop_thread.run(ok(), timeout=GUARD_S) == "test-loop"   # the loop survived


def test_loop_thread_stop_joins_thread_and_closes_loop():
    lt = LoopThread("test-loop-stop")
    assert any(t.name == "test-loop-stop" for t in threading.enumerate())
    assert not lt.loop.is_closed()
    lt.stop()
    assert lt.loop.is_closed()
    assert not any(t.name == "test-loop-stop" and t.is_alive() for t in threading.enumerate())
    lt.stop()                           # idempotent


def test_loop_thread_stop_cancels_pending_tasks_and_runs_their_finally():
    lt = LoopThread("test-loop-cancel")
    events = []

    async def forever():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        finally:
            events.append("finally")

    async def spawn():
        task = asyncio.get_running_loop().create_task(forever())
        await turns(1)                  # the task is running (awaiting its event)
        return task
    task = lt.run(spawn(), timeout=GUARD_S)
    assert not task.done()
    lt.stop()
    assert events == ["cancelled", "finally"]
    assert task.cancelled()


# ----------------------------------------------------------- SyncRep.wait_async
def _run_wait(rep: SyncRep, lsn: int, level: CommitLevel, during, timeout=None):
    """Start ``rep.wait_async``, check it is pending with one waiter, call
    ``during(task)`` (which may disturb it from another thread) and return
    the wait's outcome (result or raised exception)."""
    async def main():
        task = asyncio.ensure_future(rep.wait_async(lsn, level, timeout))
        await turns(1)
        assert not task.done() and len(rep._waiters) == 1
        await during(task)
        try:
            return await asyncio.wait_for(task, GUARD_S)
        except (TimeoutError, Fenced) as exc:
            return exc
    return asyncio.run(main())


@pytest.mark.parametrize("spec,not_enough,enough", [
    ("FIRST 1 (b, c)", [P("c", 100, 100, 100), P("b", 100, 99, 0)], [P("b", 100, 100, 0)]),
    ("ANY 2 (a, b, c)", [P("a", 100, 100, 0), P("b", 100, 50, 0)], [P("c", 100, 100, 0)]),
], ids=["first1", "any2"])
def test_wait_async_released_by_update_from_another_thread(spec, not_enough, enough):
    rep = SyncRep(SyncSpec.parse(spec))

    async def during(task):
        for pos in not_enough:
            in_thread(lambda pos=pos: rep.update(pos))
        await turns()
        assert not task.done()          # not confirmed yet: still waiting
        for pos in enough:
            in_thread(lambda pos=pos: rep.update(pos))
    assert _run_wait(rep, 100, ON, during) is True
    assert rep._waiters == []


def test_wait_async_raises_fenced_when_fenced_during_wait():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))

    async def during(task):
        in_thread(lambda: rep.fence("lost the leader lease"))
    out = _run_wait(rep, 10, ON, during)
    assert isinstance(out, Fenced) and "lost the leader lease" in str(out)
    assert rep._waiters == []


def test_wait_async_raises_fenced_when_lease_deadline_passes():
    now = [0.0]
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"), clock=lambda: now[0])
    rep.set_lease_deadline(100.0)       # far ahead on the fake clock

    async def during(task):
        await turns()
        assert not task.done()
        now[0] = 100.0                  # the deadline passes ...
        in_thread(lambda: rep.set_lease_deadline(100.0))   # ... and the waiter re-checks
    out = _run_wait(rep, 10, ON, during)
    assert isinstance(out, Fenced) and "deadline" in str(out)
    assert rep._waiters == []


def test_wait_async_returns_false_on_its_own_timeout():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))

    async def during(task):
        pass
    assert _run_wait(rep, 10, ON, during, timeout=0.05) is False
    assert rep._waiters == []


def test_wait_async_needs_no_wait_for_local_or_confirmed():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))
    rep.update(P("b", 50, 50, 50))

    async def main():
        return (await rep.wait_async(10**9, CommitLevel.LOCAL),
                await rep.wait_async(50, ON), rep._waiters)
    assert asyncio.run(main()) == (True, True, [])


def test_cancelled_wait_async_removes_its_waiter():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))

    async def main():
        task = asyncio.ensure_future(rep.wait_async(10, ON))
        await turns(1)
        assert len(rep._waiters) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert rep._waiters == []


def test_abort_waiters_fails_wait_async_with_the_reason():
    rep = SyncRep(SyncSpec.parse("FIRST 1 (b)"))

    async def during(task):
        in_thread(lambda: rep.abort_waiters("p is no longer primary (demoted)"))
    out = _run_wait(rep, 10, ON, during)
    assert isinstance(out, Fenced) and "p is no longer primary (demoted)" in str(out)
    assert rep._waiters == []
    assert rep.fence_reason is None     # future waits are not fenced


# ----------------------------------------------------------- WAL flush listeners
SEG = 64 * 1024


def test_flush_listener_sees_new_flush_lsn_and_stops_after_removal(tmp_path):
    wal = Wal.open(str(tmp_path / "wal"), SEG)
    seen: list[int] = []

    def listener(flush_lsn: int) -> None:
        seen.append(flush_lsn)
    wal.add_flush_listener(listener)
    _, end = wal.append(b"x" * 100, 1)
    assert seen == []                   # written, not flushed
    assert wal.flush() == end
    assert seen and seen[-1] == end == wal.flush_lsn
    wal.remove_flush_listener(listener)
    before = list(seen)
    _, end2 = wal.append(b"y" * 100, 1)
    wal.flush()
    wal.wake_all()
    assert wal.flush_lsn == end2 and seen == before
    wal.close()
    assert seen == before


def test_remove_flush_listener_accepts_a_bound_method(tmp_path):
    """A bound method is a new object at each attribute access: removal must
    compare with ==, not identity."""
    wal = Wal.open(str(tmp_path / "wal"), SEG)
    seen: list[int] = []
    wal.add_flush_listener(seen.append)
    wal.remove_flush_listener(seen.append)
    wal.append(b"x" * 100, 1)
    wal.flush()
    wal.close()
    assert seen == []


def test_flush_listener_is_called_on_wake_all_and_close(tmp_path):
    wal = Wal.open(str(tmp_path / "wal"), SEG)
    _, end = wal.append(b"x" * 100, 1)
    wal.flush()
    seen: list[int] = []
    wal.add_flush_listener(seen.append)
    wal.wake_all()
    assert seen == [end]
    wal.close()
    assert seen == [end, end]


# ----------------------------------------------------------- write_async
@pytest.fixture
def engine(tmp_path):
    """An in-process primary (real files, real gRPC server on a free port)."""
    e = EmbeddedEngine("p", str(tmp_path / "p"), "127.0.0.1:0", EmbeddedConfig())
    e.bootstrap()
    e.start()
    yield e
    e.stop()


def _count_wal_fsyncs(monkeypatch, wal) -> list[int]:
    """Count ``os.fdatasync`` calls on files of ``wal``'s directory."""
    calls: list[int] = []
    real = os.fdatasync
    waldir = os.path.realpath(wal.directory)

    def spy(fd):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path.startswith(waldir + os.sep):
            calls.append(fd)
        return real(fd)
    monkeypatch.setattr(wal_mod.os, "fdatasync", spy)
    return calls


def test_concurrent_write_async_share_fsyncs(engine, monkeypatch):
    wal = engine.storage.wal
    fsyncs = _count_wal_fsyncs(monkeypatch, wal)
    n = 32

    async def burst():
        return await asyncio.gather(*(engine.write_async([(b"k%d" % i, b"v%d" % i)], CommitLevel.LOCAL)
                                      for i in range(n)))
    results = engine.event_loop.run(burst(), timeout=60)
    lsns = [r.lsn for r in results]
    assert len(set(lsns)) == n and lsns == sorted(lsns)   # distinct, in call order
    assert wal.flush_lsn >= lsns[-1]                      # all acknowledged durable
    assert 1 <= len(fsyncs) < n                           # group commit on the loop
    assert engine._inflight == 0
    assert engine.read(b"k%d" % (n - 1)).value == b"v%d" % (n - 1)


def test_lone_write_async_is_durable(engine):
    res = engine.event_loop.run(engine.write_async([(b"a", b"1")], CommitLevel.LOCAL), timeout=GUARD_S)
    assert engine.storage.wal.flush_lsn >= res.lsn and engine._inflight == 0


def test_write_async_on_a_standby_raises_wrong_role(engine):
    engine.demote(engine.term)
    assert engine.role is Role.STANDBY
    before = engine.storage.wal.write_lsn
    with pytest.raises(WrongRole):
        engine.event_loop.run(engine.write_async([(b"a", b"1")], CommitLevel.LOCAL), timeout=GUARD_S)
    assert engine.storage.wal.write_lsn == before


def test_write_async_after_fence_raises_and_writes_nothing(engine):
    engine.syncrep.fence("x")
    before = engine.storage.wal.write_lsn
    with pytest.raises(Fenced, match="x"):
        engine.event_loop.run(engine.write_async([(b"a", b"1")], CommitLevel.LOCAL), timeout=GUARD_S)
    assert engine.storage.wal.write_lsn == before
    assert not engine.read(b"a").found
    assert engine._inflight == 0


def test_write_async_fenced_while_waiting_for_standby_is_not_acknowledged(engine):
    engine.set_sync_standbys(SyncSpec.parse("FIRST 1 (absent)"))
    fut = asyncio.run_coroutine_threadsafe(engine.write_async([(b"a", b"1")], ON), engine.event_loop.loop)
    pause = threading.Event()
    for _ in range(int(GUARD_S / 0.01)):        # poll until the commit waits (hang guard)
        if engine.syncrep._waiters or fut.done():
            break
        pause.wait(0.01)
    assert engine.syncrep._waiters and not fut.done()
    engine.syncrep.fence("x")
    with pytest.raises(Fenced, match="x"):
        fut.result(GUARD_S)
    assert engine._inflight == 0

