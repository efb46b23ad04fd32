"""Cascading failover in synchronous mode: the leader promoted for the
current term dies before a synchronous set was published for it.

Story: ``a`` led term 1 with the set FIRST 1 (b); ``a`` died, ``b`` was
promoted at term 2 (flush 1000 at the time, recorded in the in-flight
record) and died before the orchestrator published a set for term 2. ``c``
is not in the old set, but flushed at least what ``b`` had when it was
picked; ``b`` acknowledged nothing at term 2 (its agent holds commits until
its own set is published), so ``c`` holds every acknowledged write.
"""
from __future__ import annotations

from core_builders import dead, leaderless, primary, standby, sync
from walrus_ha.orchestrator.core import CoreConfig, Promote, decide
from walrus_ha.orchestrator.core.model import Candidate, FailoverState, OperationKind, Phase
from walrus_ha.orchestrator.core.ranking import promoted_bound, rank

CFG = CoreConfig(synchronous_mode=True)


def _fs(term: int = 2, winner: str = "b", flush: int = 1000) -> FailoverState:
    return FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=term, old_leader="a",
                         new_leader=winner, candidates=(Candidate(winner, flush_lsn=flush, timeline=1,
                                                                  eligible=True, rank=1),))


def _snapshot(c_flush: int, fs: FailoverState | None = None, set_term: int = 1):
    members = (dead(primary("a")), dead(standby("b", timeline=2)),
               standby("c", upstream="b", flush_lsn=c_flush, streaming=False))
    return leaderless(*members, term=2, last_leader="b", sync=sync("b", term=set_term),
                      failover=fs if fs is not None else _fs())


def test_survivor_that_flushed_the_dead_winners_lsn_is_promoted():
    d = decide(_snapshot(1000), CFG, now=100.0)
    promotes = [a for a in d.actions if isinstance(a, Promote)]
    assert promotes == [Promote("c", 3)], d.reason


def test_survivor_behind_the_dead_winner_is_not_promoted():
    """It may miss writes acknowledged at term 1 (they were only sure to be on b)."""
    snap = _snapshot(999)
    assert rank(snap, CFG).winner is None
    assert not [a for a in decide(snap, CFG, now=100.0).actions if isinstance(a, Promote)]


def test_no_bound_without_an_in_flight_record_for_the_current_term():
    assert promoted_bound(_snapshot(1000, fs=_fs(term=1))) is None
    assert rank(_snapshot(1000, fs=_fs(term=1)), CFG).winner is None


def test_no_bound_when_the_set_is_for_the_current_term():
    """Then the set's own rules hold (its leader may have acknowledged under it)."""
    assert promoted_bound(_snapshot(1000, set_term=2)) is None
