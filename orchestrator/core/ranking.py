"""Failover candidate ranking: who may be promoted, best first, and why.

The one rule: the winner has the highest flush LSN among the eligible members
on the newest timeline; ties go to the higher ``priority`` tag, then to the
name that sorts first. Every excluded member carries an ``Exclusion`` and a
sentence. In synchronous mode only members of the published set (and the
set's own leader if the set is for the latest term: it holds every
acknowledged write) may win, and only after ``n - k + 1`` members of the set
are eligible (``SyncView.quorum``).
"""
from __future__ import annotations

from dataclasses import replace

from walrus_ha.orchestrator.core.model import (
    Candidate,
    ClusterSnapshot,
    CoreConfig,
    Exclusion,
    MemberView,
    Ranking,
    Role,
)


def reference_lsn(snapshot: ClusterSnapshot) -> int:
    """The LSN lag is measured against: the last known primary LSN (or the
    in-flight record's), else the highest flush LSN any member reports."""
    known = max(snapshot.last_known_primary_lsn,
                snapshot.failover.last_primary_lsn if snapshot.failover else 0)
    if known:
        return known
    return max((m.flush_lsn for m in snapshot.members), default=0)


def _exclusion(m: MemberView, snapshot: ClusterSnapshot, config: CoreConfig,
               excluded: dict[str, tuple[Exclusion, str]], ref: int) -> tuple[Exclusion, str] | None:
    """The first reason ``m`` cannot be promoted, or None."""
    if m.name in excluded:
        return excluded[m.name]
    if m.nofailover:
        return Exclusion.NOFAILOVER, "tagged nofailover"
    if m.provably_dead:
        return Exclusion.AGENT_DOWN, "agent refused the connection"
    if not m.reachable:
        return Exclusion.UNREACHABLE, "agent did not answer GetStatus in time"
    if not m.has_member_key:
        return Exclusion.NO_MEMBER_KEY, "its member key (lease) is gone from etcd"
    if m.role in (Role.STOPPED, Role.UNKNOWN):
        return Exclusion.ENGINE_STOPPED, f"engine role is {m.role.value}"
    if m.needs_reclone:
        return Exclusion.NEEDS_RECLONE, "needs a re-clone"
    if config.synchronous_mode:
        sync = snapshot.sync
        if sync is None or not sync.enabled:
            return Exclusion.NOT_IN_SYNC_SET, "synchronous mode and no synchronous set is published"
        bound = promoted_bound(snapshot)
        covered = bound is not None and m.flush_lsn >= bound
        if m.name not in sync.names and not _is_set_leader(m.name, snapshot) and not covered:
            return Exclusion.NOT_IN_SYNC_SET, f"not in the synchronous set {sync.render()}"
    lag = ref - m.flush_lsn
    if config.maximum_lag_on_failover >= 0 and lag > config.maximum_lag_on_failover:
        return Exclusion.LAG, (f"{lag} bytes behind the last known primary LSN, over "
                               f"maximum_lag_on_failover={config.maximum_lag_on_failover}")
    return None


def _is_set_leader(name: str, snapshot: ClusterSnapshot) -> bool:
    """``name`` is the leader the published set was made for, in the latest
    term: it acknowledged every synchronous write itself."""
    sync = snapshot.sync
    return sync is not None and bool(sync.leader) and sync.leader == name and sync.term == snapshot.term


def promoted_bound(snapshot: ClusterSnapshot) -> int | None:
    """The flush LSN that holds every acknowledged write when the leader of
    the current term died before a synchronous set was published for it, or
    None when that case does not apply.

    Why it is safe (docs/design.md safety 4): the published set is for
    an older term ``T_s`` than ``snapshot.term``, so every leader of a later
    term never had a set of its own. An agent promoted while an enabled set
    of another leader/term is published acknowledges nothing until its own
    set appears (``NodeAgent.apply_sync`` applies a set no standby can
    satisfy), so those leaders acknowledged nothing, and every acknowledged
    write is one of term ``<= T_s``. The in-flight record for the current
    term names the winner the core picked for it and that winner's flush
    LSN, read after the old leader was gone (dead or fenced) and, by this
    same ranking, at least every acknowledged write. So any member that
    flushed at least that LSN holds every acknowledged write, whether or not
    it is in the old set (e.g. the old set named only the dead new leader).
    """
    sync, fs = snapshot.sync, snapshot.failover
    if sync is None or not sync.enabled or sync.term >= snapshot.term or fs is None:
        return None
    if fs.term == snapshot.term + 1 and fs.ack_bound > 0:
        # The record of the failover that replaces that dead leader carries
        # the bound: nobody took a term since, so nothing new was acknowledged.
        return fs.ack_bound
    if fs.term != snapshot.term or not fs.new_leader:
        return None
    winner = next((c for c in fs.candidates if c.name == fs.new_leader), None)
    return winner.flush_lsn if winner is not None else None


def sort_key(c: Candidate) -> tuple[int, int, int, str]:
    """Best first: newest timeline, highest flush LSN, highest priority, name."""
    return (-c.timeline, -c.flush_lsn, -c.priority, c.name)


def _why_lost(c: Candidate, best: Candidate) -> str:
    if c.timeline < best.timeline:
        return f"on timeline {c.timeline}, older than the winner's {best.timeline}"
    if c.flush_lsn < best.flush_lsn:
        return f"{best.flush_lsn - c.flush_lsn} bytes behind the winner"
    if c.priority < best.priority:
        return f"same LSN, lower priority ({c.priority} < {best.priority})"
    return "same LSN and priority, name sorts after the winner's"


def _bound_first(snapshot: ClusterSnapshot, config: CoreConfig, eligible: list[Candidate]) -> int | None:
    """``promoted_bound`` in synchronous mode unless a set leader of the
    current term is eligible, else None. A member that flushed the bound is
    sure to hold every acknowledged write, so it must win even over one on a
    newer timeline: a member repointed to a new leader that died before it
    had a set of its own reports that leader's timeline with a flush LSN
    that may lie below the fork (found by the durability random walk: ANY 2
    (b, c, d), c promoted at 1 and died, b repointed to c at flush 0, d at 1
    on the old timeline; with two of the set heard, timeline order picked
    b). This holds whether or not enough of the set answer; ``rank`` also
    compares members below the bound by flush LSN alone."""
    sync = snapshot.sync
    if not config.synchronous_mode or sync is None or not sync.enabled:
        return None
    if any(_is_set_leader(c.name, snapshot) for c in eligible):
        return None
    return promoted_bound(snapshot)


def _quorum_wait(snapshot: ClusterSnapshot, config: CoreConfig, eligible: list[Candidate]) -> str:
    """Why a synchronous-mode failover must wait for more of the set, or ""."""
    sync = snapshot.sync
    if not config.synchronous_mode or sync is None or not sync.enabled:
        return ""
    names = {c.name for c in eligible}
    if any(_is_set_leader(n, snapshot) for n in names):
        return ""  # the set's own leader holds every acknowledged write
    heard = len(names & set(sync.names))
    if heard >= sync.quorum:
        return ""
    bound = promoted_bound(snapshot)
    if bound is not None and any(c.flush_lsn >= bound for c in eligible):
        return ""  # see promoted_bound: that member holds every acknowledged write
    return (f"synchronous set {sync.render()}: need {sync.quorum} eligible members of the set "
            f"to be sure of every acknowledged write, have {heard}")


def rank(snapshot: ClusterSnapshot, config: CoreConfig,
         excluded: dict[str, tuple[Exclusion, str]] | None = None) -> Ranking:
    """Rank every member of ``snapshot`` for promotion.

    ``excluded`` forces exclusions (e.g. the current leader in a switchover,
    winners whose Promote timed out). Pure; never raises for any snapshot.
    """
    excluded = excluded or {}
    ref = reference_lsn(snapshot)
    eligible: list[Candidate] = []
    rejected: list[Candidate] = []
    for m in snapshot.members:
        base = Candidate(name=m.name, flush_lsn=m.flush_lsn, timeline=m.timeline, priority=m.priority)
        why = _exclusion(m, snapshot, config, excluded, ref)
        if why is None:
            eligible.append(replace(base, eligible=True))
        else:
            rejected.append(replace(base, exclusion=why[0], reason=why[1]))
    bound = _bound_first(snapshot, config, eligible)
    if bound is None:
        eligible.sort(key=sort_key)
    else:
        # Below the bound a member's timeline says nothing: it may have been
        # repointed to the dead leader's timeline without reaching its fork
        # (the bound), so its WAL is a prefix of the old timeline's. Those
        # compare by flush LSN alone, after every member that holds the bound.
        eligible.sort(key=lambda c: (c.flush_lsn < bound, -c.timeline if c.flush_lsn >= bound else 0,
                                     -c.flush_lsn, -c.priority, c.name))
    rejected.sort(key=lambda c: c.name)
    ranked = []
    for i, c in enumerate(eligible):
        if i == 0:
            reason = f"highest flush LSN {c.flush_lsn} on timeline {c.timeline}"
        elif bound is not None and c.flush_lsn < bound <= eligible[0].flush_lsn:
            reason = (f"flushed {c.flush_lsn}, below {bound}, the LSN that holds every acknowledged "
                      "write of the leader that died before its own synchronous set was published")
        else:
            reason = _why_lost(c, eligible[0])
        ranked.append(replace(c, rank=i + 1, reason=reason))
    candidates = tuple(ranked + rejected)
    if not ranked:
        reasons = "; ".join(f"{c.name}: {c.reason}" for c in rejected) or "no members"
        return Ranking(candidates, None, f"no eligible candidate ({reasons})")
    wait = _quorum_wait(snapshot, config, ranked)
    if wait:
        return Ranking(candidates, None, wait)
    return Ranking(candidates, ranked[0].name, "")


def explain(snapshot: ClusterSnapshot, config: CoreConfig) -> Ranking:
    """Dry run for ``ExplainFailover``: who would win if the leader failed now.

    With a leader, the leader itself is excluded; without one, the ranking is
    the one a failover would use (including the in-flight record's failed
    attempts).
    """
    forced: dict[str, tuple[Exclusion, str]] = {}
    if snapshot.leader is not None:
        forced[snapshot.leader.name] = (Exclusion.OLD_LEADER, "the current leader")
    elif snapshot.failover is not None:
        for name in snapshot.failover.attempted:
            forced[name] = (Exclusion.PROMOTE_FAILED, "an earlier promote of it timed out")
    return rank(snapshot, config, forced)
