"""``decide``: one pure step of the orchestrator.

The one rule: look only at the snapshot, the config and ``now``; return what
to do. Safety does not rest on the controller executing everything: each
action is idempotent and fenced by a term (a Promote always carries
``snapshot.term + 1``, so etcd's create-if-absent on ``leader`` lets at most
one member win it), and an interrupted sequence is finished by whoever decides
next from the saved ``FailoverState``.
"""
from __future__ import annotations

from dataclasses import replace

from walrus_ha.orchestrator.core.model import (
    Action,
    ClearFailoverState,
    ClearSwitchover,
    ClusterSnapshot,
    CoreConfig,
    Decision,
    DemoteForSwitchover,
    Exclusion,
    FailoverState,
    Follow,
    HistoryEntry,
    LeaderView,
    MemberView,
    OperationKind,
    Phase,
    Promote,
    PublishSync,
    Ranking,
    RecordHistory,
    Rejoin,
    RequestOutcome,
    RevokeLeaderLease,
    Role,
    SaveFailoverState,
    SwitchoverRequest,
    Wait,
)
from walrus_ha.orchestrator.core.ranking import explain, promoted_bound, rank, reference_lsn
from walrus_ha.orchestrator.core.reseed import keyspace_lost, reseed_step
from walrus_ha.orchestrator.core.schedule import Due, restarting, switchover_due
from walrus_ha.orchestrator.core.states import State, transition
from walrus_ha.orchestrator.core.syncset import plan_sync

_Step = tuple[State, list[Action], str, Ranking | None]


def decide(snapshot: ClusterSnapshot, config: CoreConfig, now: float,
           previous: State = State.STARTING) -> Decision:
    """Decide what to do about ``snapshot`` at time ``now``.

    ``previous`` is the state of the last decision (``STARTING`` for the
    first one of this orchestrator). Invariants (tested with hypothesis): at
    most one Promote, whose term is ``snapshot.term + 1``; the promoted member
    has the highest flush LSN of the eligible ones on the newest timeline; in
    synchronous mode it is in the published set (or was its leader); paused:
    no Promote, Demote or Revoke; the fast path (RevokeLeaderLease) only when
    the leader's agent refused the connection and no reachable standby still
    streams. Raises ``InvalidTransition`` only if the state table misses a
    pair (a bug).
    """
    state, actions, reason, ranking = _step(snapshot, config, now)
    if not actions:
        actions = [Wait(reason)]
    return Decision(state, tuple(actions), reason, ranking, transition(previous, state, reason))


def _step(snapshot: ClusterSnapshot, config: CoreConfig, now: float) -> _Step:
    if snapshot.paused:
        return State.PAUSED, [], "paused by the operator: no automatic actions", explain(snapshot, config)
    leader = snapshot.leader
    if leader is None:
        if snapshot.term == 0 and keyspace_lost(snapshot):   # never promote at term 1 over members' data
            return reseed_step(snapshot, config, now)
        if snapshot.term == 0 and snapshot.failover is None:
            who = "a node claimed initialize and is bootstrapping" if snapshot.initialized else \
                "waiting for a node to claim initialize"
            return State.BOOTSTRAPPING, [], f"no leader has ever been elected: {who}", None
        return _leaderless(snapshot, config, now)
    fs = snapshot.failover
    lm = snapshot.member(leader.name)
    if fs is not None and fs.term > leader.term:
        return _unfinished(snapshot, config, now, leader, lm, fs)
    if restarting(lm, now):
        assert lm is not None                     # ``restarting`` checked it
        return (State.RESTARTING, [], f"{leader.name} restarts its engine by the operator's request "
                f"({lm.restarting_until - now:.1f}s left): planned, no failover before then", None)
    if lm is None or not lm.reachable:
        return _suspect(snapshot, config, leader, lm)
    if lm.role is not Role.PRIMARY:
        if fs is not None:
            return State.PROMOTING, [], f"{leader.name} holds the leader key and is still promoting", None
        return State.PRIMARY_SUSPECT, [], f"{leader.name} holds the leader key but its engine is {lm.role.value}", None
    if fs is None and snapshot.switchover is not None:
        return _switchover_start(snapshot, config, now, leader, lm)
    if fs is None and lm.write_error:
        return _cannot_write(snapshot, config, now, leader, lm)
    return _healthy(snapshot, config, now, leader, lm)


# ------------------------------------------------------------ leader present

def _suspect(snapshot: ClusterSnapshot, config: CoreConfig, leader: LeaderView,
             lm: MemberView | None) -> _Step:
    """The leader key is held but its agent does not answer."""
    if lm is None:
        return State.PRIMARY_SUSPECT, [], f"no status for leader {leader.name}: waiting for its lease", None
    standbys = [m for m in snapshot.members if m.name != leader.name and m.reachable and m.role is Role.STANDBY]
    streaming = [m.name for m in standbys if m.streaming]
    if config.fast_path and lm.provably_dead and standbys and not streaming:
        reason = (f"fast path: {leader.name}'s agent refused the connection and none of "
                  f"{len(standbys)} reachable standbys still streams")
        return (State.FAILING_OVER, [RevokeLeaderLease(leader.term, leader.name, reason)], reason,
                explain(snapshot, config))
    if lm.provably_dead:
        why = (f"{', '.join(streaming)} still streaming" if streaming
               else "no reachable standby" if not standbys else "fast path disabled")
        reason = f"{leader.name}'s agent refused the connection ({why}): waiting for its lease to expire"
    else:
        reason = f"{leader.name}'s agent does not answer (timeout): waiting for its lease to expire"
    return State.PRIMARY_SUSPECT, [], reason, None


def repoint_actions(snapshot: ClusterSnapshot, leader: LeaderView, lm: MemberView,
                    now: float | None = None) -> list[Action]:
    """Follow / Rejoin for every reachable member not streaming from ``leader``
    (with ``now``: except members in a planned restart, ``schedule.restarting``).

    A second primary, a member that needs a re-clone, or one on an older
    timeline that is not already streaming from the leader is rejoined
    (rewound if it diverged); any other standby with the wrong upstream, or
    not streaming, is told to follow.
    """
    timeline = lm.timeline or leader.timeline
    actions: list[Action] = []
    for m in snapshot.members:
        if m.name == leader.name or not m.reachable or m.role in (Role.STOPPED, Role.UNKNOWN):
            continue
        if now is not None and restarting(m, now):
            continue
        on_leader = m.upstream_name == leader.name and m.streaming
        behind = bool(timeline) and m.timeline < timeline
        if m.role is Role.PRIMARY or m.needs_reclone or (behind and not on_leader):
            actions.append(Rejoin(m.name, leader.name, leader.term))
        elif not on_leader:
            actions.append(Follow(m.name, leader.name, leader.term))
    return actions


def _healthy(snapshot: ClusterSnapshot, config: CoreConfig, now: float, leader: LeaderView,
             lm: MemberView) -> _Step:
    """A reachable primary holds the key: repoint, manage the sync set, and
    finish an in-flight operation that produced this leader."""
    plan = plan_sync(snapshot, config, leader, lm)
    # The set first: it names standbys already streaming from the leader, and
    # a Follow / Rejoin of another member may take up to the RPC timeout (a
    # slow rewind, a member on a full disk) that commits would wait behind.
    actions: list[Action] = [plan.publish] if plan.publish is not None else []
    actions += repoint_actions(snapshot, leader, lm, now)
    notes = [plan.reason] if plan.reason else []
    fs = snapshot.failover
    if fs is not None:
        actions += _finish(snapshot, config, now, leader, lm, fs, plan.publish)
        notes.insert(0, f"{fs.kind.value} to {leader.name} (term {leader.term}) done")
    missing = [m.name for m in snapshot.members if not m.reachable]
    moved = [a.member for a in actions if isinstance(a, (Follow, Rejoin))]
    if lm.fenced:
        notes.append(f"{leader.name} is fenced (cannot prove its lease)")
    if moved:
        state = State.REPOINTING
        notes.insert(0, "repointing " + ", ".join(moved))
    elif missing or plan.short or lm.fenced or (plan.publish is None and plan.reason):
        state = State.DEGRADED
        if missing:
            notes.append("unreachable: " + ", ".join(missing))
        if plan.short:
            notes.append(f"synchronous set {plan.target.render() or 'empty'} is short of "
                         f"{config.synchronous_node_count} standbys")
    else:
        state = State.HEALTHY
    return state, actions, "; ".join(notes) or f"{leader.name} leads term {leader.term}", None


def _finish(snapshot: ClusterSnapshot, config: CoreConfig, now: float, leader: LeaderView, lm: MemberView,
            fs: FailoverState, publish: PublishSync | None) -> list[Action]:
    """RecordHistory + clear the in-flight record (and the switchover request).

    Synchronous mode: the record is cleared only once the new leader's own
    synchronous set is published (or is being published by this decision,
    ahead of the clear). Until then the set in etcd is an older term's, and
    if the new leader dies, the record's winner LSN (``promoted_bound``) is
    what tells a survivor holding every acknowledged write; without it the
    next failover could find no candidate at all. Phase SYNCING marks a
    record whose history is already written."""
    out: list[Action] = []
    if fs.phase is not Phase.SYNCING:
        out += _history(snapshot, now, leader, lm, fs)
    if config.synchronous_mode and not _own_set(snapshot, publish, leader):
        if fs.phase is not Phase.SYNCING:
            out.append(SaveFailoverState(replace(fs, phase=Phase.SYNCING, phase_since=now)))
        return out
    out.append(ClearFailoverState())
    return out


def _own_set(snapshot: ClusterSnapshot, publish: PublishSync | None, leader: LeaderView) -> bool:
    """An enabled synchronous set for ``leader`` and its term is published, or
    ``publish`` (run before the clear) publishes one."""
    own = [(s.leader, s.term, s.num > 0 and bool(s.names)) for s in (snapshot.sync, publish) if s is not None]
    return (leader.name, leader.term, True) in own


def _history(snapshot: ClusterSnapshot, now: float, leader: LeaderView, lm: MemberView,
             fs: FailoverState) -> list[Action]:
    """RecordHistory (+ clear the switchover request that asked for it)."""
    winner = next((c for c in fs.candidates if c.name == leader.name), None)
    promoted = winner.flush_lsn if winner is not None else lm.flush_lsn
    entry = HistoryEntry(term=leader.term, kind=fs.kind, old_leader=fs.old_leader, new_leader=leader.name,
                         last_primary_lsn=fs.last_primary_lsn, promoted_lsn=promoted,
                         bytes_possibly_lost=max(0, fs.last_primary_lsn - promoted),
                         started_at=fs.started_at, finished_at=now, candidates=fs.candidates,
                         reason=fs.reason, timeline=lm.timeline or leader.timeline)
    out: list[Action] = [RecordHistory(entry)]
    req = snapshot.switchover
    if req is not None:
        why = f"{fs.kind.value} finished: {leader.name} leads term {leader.term}"
        if req.candidate and req.candidate != leader.name:
            out.append(ClearSwitchover(f"{why} (not {req.candidate}: {fs.reason})", RequestOutcome.SUPERSEDED))
        else:
            out.append(ClearSwitchover(why, RequestOutcome.DONE))
    return out


def _cannot_write(snapshot: ClusterSnapshot, config: CoreConfig, now: float, leader: LeaderView,
                  lm: MemberView) -> _Step:
    """The leader answers but its writes fail (disk full, I/O errors). After
    ``primary_write_failure_timeout`` (0 = never) replace it the way a
    switchover does: save the plan, demote it, then promote the best standby
    once that one has the old primary's final flush LSN (``_pick``), so no
    acknowledged write is lost. Until then, or with no standby that can take
    over, carry on as healthy but DEGRADED and say why."""
    timeout = config.primary_write_failure_timeout
    failing_s = now - lm.write_error_since
    ranking = rank(snapshot, config, {leader.name: (Exclusion.CANNOT_WRITE, f"cannot write: {lm.write_error}")})
    if timeout > 0 and failing_s >= timeout and ranking.winner is not None:
        reason = (f"failover: {leader.name} cannot write for {failing_s:.1f}s (over {timeout:g}s): "
                  f"{lm.write_error}; {leader.name} -> {ranking.winner}")
        fs = FailoverState(kind=OperationKind.FAILOVER, phase=Phase.DEMOTING, term=leader.term + 1,
                           old_leader=leader.name, new_leader=ranking.winner, started_at=now, phase_since=now,
                           last_primary_lsn=max(lm.flush_lsn, snapshot.last_known_primary_lsn),
                           candidates=ranking.candidates, reason=reason)
        return (State.SWITCHING_OVER, [SaveFailoverState(fs), DemoteForSwitchover(leader.name, leader.term)],
                reason, ranking)
    state, actions, reason, _ = _healthy(snapshot, config, now, leader, lm)
    if timeout <= 0:
        plan = "automatic failover for this is off"
    elif ranking.winner is None:
        plan = f"no standby can take over: {ranking.waiting}"
    else:
        plan = f"failing over after {timeout:g}s"
    note = f"{leader.name} cannot write ({lm.write_error}); {plan}"
    return State.DEGRADED if state is State.HEALTHY else state, actions, f"{reason}; {note}", ranking


# ------------------------------------------------------------ switchover

def _switchover_start(snapshot: ClusterSnapshot, config: CoreConfig, now: float, leader: LeaderView,
                      lm: MemberView) -> _Step:
    """Validate the request; demote the leader after saving the plan. A
    scheduled request waits for its time, and expires past ``scheduled_grace``."""
    req: SwitchoverRequest = snapshot.switchover  # type: ignore[assignment]
    due = switchover_due(req.scheduled_at, now, config.scheduled_grace)
    if due is not Due.DUE:
        state, actions, reason, _ = _healthy(snapshot, config, now, leader, lm)
        what = f"switchover to {req.candidate or 'the best standby'}"
        if due is Due.NOT_DUE:
            return state, actions, f"{reason}; {what} scheduled in {req.scheduled_at - now:.0f}s", None
        problem = (f"scheduled {what} expired: it was due {now - req.scheduled_at:.0f}s ago, "
                   f"more than {config.scheduled_grace:g}s")
        return state, [ClearSwitchover(problem)] + actions, problem, None
    ranking = rank(snapshot, config, {leader.name: (Exclusion.OLD_LEADER, "the leader stepping down")})
    target = req.candidate or ranking.winner
    problem = ""
    if req.expected_leader and req.expected_leader != leader.name:
        problem = f"switchover expected leader {req.expected_leader}, but {leader.name} leads"
    elif target is None:
        problem = f"switchover impossible: {ranking.waiting}"
    elif (c := ranking.get(target)) is None or not c.eligible:
        problem = f"switchover target {target} is not eligible: {c.reason if c else 'unknown member'}"
    if problem:
        state, actions, reason, _ = _healthy(snapshot, config, now, leader, lm)
        return state, [ClearSwitchover(problem)] + actions, problem, ranking
    assert target is not None                     # else ``problem`` was set
    kind = OperationKind.FAILOVER if req.failover else OperationKind.SWITCHOVER
    reason = f"{kind.value} requested: {leader.name} -> {target}"
    fs = FailoverState(kind=kind, phase=Phase.DEMOTING, term=leader.term + 1, old_leader=leader.name,
                       new_leader=target, started_at=now, phase_since=now,
                       last_primary_lsn=max(lm.flush_lsn, snapshot.last_known_primary_lsn),
                       candidates=ranking.candidates, reason=reason)
    return (State.SWITCHING_OVER, [SaveFailoverState(fs), DemoteForSwitchover(leader.name, leader.term)],
            reason, ranking)


def _unfinished(snapshot: ClusterSnapshot, config: CoreConfig, now: float, leader: LeaderView,
                lm: MemberView | None, fs: FailoverState) -> _Step:
    """An in-flight record for a later term while ``leader`` still holds the
    key: keep demoting it (a switchover), or drop a stale/expired record."""
    demoting = fs.phase is Phase.DEMOTING and leader.name == fs.old_leader
    if demoting and now - fs.phase_since <= config.switchover_timeout and not (lm and lm.provably_dead):
        reason = f"{fs.kind.value}: waiting for {leader.name} to step down"
        return State.SWITCHING_OVER, [DemoteForSwitchover(leader.name, leader.term)], reason, None
    reason = (f"{fs.kind.value} abandoned: {leader.name} did not step down" if demoting else
              f"stale in-flight {fs.kind.value} record for term {fs.term}: {leader.name} leads term {leader.term}")
    clear: list[Action] = [ClearFailoverState()]
    if snapshot.switchover is not None:
        clear.insert(0, ClearSwitchover(reason))
    if lm is None or not lm.reachable or lm.role is not Role.PRIMARY:
        return State.PRIMARY_SUSPECT, clear, reason, None
    state, actions, _, _ = _healthy(replace(snapshot, failover=None, switchover=None), config, now, leader, lm)
    return state, actions + clear, reason, None


# ------------------------------------------------------------ no leader

def _leaderless(snapshot: ClusterSnapshot, config: CoreConfig, now: float) -> _Step:
    """The leader key is gone: pick (or keep) a winner and promote it."""
    fs = snapshot.failover
    if fs is not None and fs.term <= snapshot.term:
        fs = None  # that operation's term was taken and lost since: start afresh
    attempted = fs.attempted if fs is not None else ()
    timed_out = (fs is not None and fs.phase is Phase.PROMOTING and bool(fs.new_leader)
                 and now - fs.phase_since > config.promote_timeout)
    if timed_out:
        attempted = tuple(dict.fromkeys(attempted + (fs.new_leader,)))  # type: ignore[union-attr]
    ranking = rank(snapshot, config, _failed(attempted))
    if ranking.winner is None and attempted:
        attempted = ()
        ranking = rank(snapshot, config)
    if ranking.winner is None:
        forced = _forced(snapshot, now, fs, ranking)
        if forced is not None:
            return forced
        return State.NO_CANDIDATE, [], f"no leader and no candidate: {ranking.waiting}{_override_hint(ranking)}", \
            ranking
    winner, why = _pick(snapshot, config, now, fs, ranking)
    if winner is None:
        return State.SWITCHING_OVER, [], why, ranking
    term = snapshot.term + 1
    new = _next_state(snapshot, now, fs, ranking, winner, term, attempted, why, restart=timed_out)
    actions: list[Action] = [] if new == fs else [SaveFailoverState(new)]
    actions.append(Promote(winner, term))
    if fs is None and snapshot.switchover is not None:
        req = snapshot.switchover
        if req.failover and req.candidate == winner:
            actions.append(ClearSwitchover(f"failover: promoting {winner} at term {term}", RequestOutcome.DONE))
        else:
            actions.append(ClearSwitchover(f"superseded by a failover: promoting {winner}",
                                           RequestOutcome.SUPERSEDED))
    if fs is None:
        state = State.FAILING_OVER
    else:
        state = State.SWITCHING_OVER if fs.phase is Phase.DEMOTING else State.PROMOTING
    return state, actions, why, ranking


def _failed(attempted: tuple[str, ...]) -> dict[str, tuple[Exclusion, str]]:
    return {n: (Exclusion.PROMOTE_FAILED, "an earlier promote of it timed out") for n in attempted}


def _pick(snapshot: ClusterSnapshot, config: CoreConfig, now: float, fs: FailoverState | None,
          ranking: Ranking) -> tuple[str | None, str]:
    """The member to promote: a preferred one (switchover target, manual
    failover candidate, the winner already being promoted) if it ties the best
    flush LSN, else the ranking winner. After a Demote, the target must also
    reach the old primary's final flush LSN (even if the old primary no longer
    answers); until then, or ``switchover_timeout``, it returns None."""
    best = ranking.get(ranking.winner)  # type: ignore[arg-type]
    assert best is not None                       # the caller saw a winner
    preferred = fs.new_leader if fs is not None else ""
    if fs is None and snapshot.switchover is not None and snapshot.switchover.failover:
        preferred = snapshot.switchover.candidate
    c = ranking.get(preferred) if preferred else None
    after_demote = (fs is not None and fs.phase is Phase.DEMOTING
                    and now - fs.started_at <= config.switchover_timeout)
    old = snapshot.member(fs.old_leader) if fs is not None else None
    final = old.flush_lsn if after_demote and old is not None else 0
    if c is not None and c.eligible and (c.timeline, c.flush_lsn) >= (best.timeline, best.flush_lsn) \
            and c.flush_lsn >= final:
        return c.name, f"promote {c.name}: as advanced as any eligible member ({c.flush_lsn})"
    if after_demote and c is not None and c.eligible:
        goal = max(final, best.flush_lsn)
        return None, f"{fs.kind.value}: waiting for {preferred} ({c.flush_lsn}) to catch up to {goal}"  # type: ignore[union-attr]
    return best.name, f"promote {best.name}: {best.reason}"


def _next_state(snapshot: ClusterSnapshot, now: float, fs: FailoverState | None, ranking: Ranking,
                winner: str, term: int, attempted: tuple[str, ...], why: str, restart: bool) -> FailoverState:
    """The in-flight record for promoting ``winner``: unchanged if it already
    says that (and the promote did not time out, which restarts its clock)."""
    if not restart and fs is not None and fs.phase is Phase.PROMOTING and fs.new_leader == winner \
            and fs.term == term and fs.attempted == attempted:
        return fs
    bound = promoted_bound(snapshot) or 0  # carried, so a successor may still pick past the old set
    if fs is None:
        old = snapshot.last_leader or (snapshot.sync.leader if snapshot.sync else "")
        return FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=term, old_leader=old,
                             new_leader=winner, started_at=now, phase_since=now,
                             last_primary_lsn=reference_lsn(snapshot), attempted=attempted,
                             candidates=ranking.candidates, reason=why, ack_bound=bound)
    return replace(fs, phase=Phase.PROMOTING, term=term, new_leader=winner, phase_since=now,
                   attempted=attempted, candidates=ranking.candidates, reason=why, ack_bound=bound)


# ------------------------------------------------------------ operator override

# Exclusions an operator may override: the member holds data and runs, it is
# only not *known* to hold every acknowledged write.
_FORCEABLE = (Exclusion.NOT_IN_SYNC_SET, Exclusion.LAG)


def forceable(ranking: Ranking) -> list[str]:
    """Members a forced failover may promote when ``ranking`` has no winner."""
    return [c.name for c in ranking.candidates if c.eligible or c.exclusion in _FORCEABLE]


def _override_hint(ranking: Ranking) -> str:
    names = forceable(ranking)
    if not names:
        return ""
    return (f"; no member provably holds every acknowledged write: an operator may accept that loss with "
            f"`walrus ctl failover --to NAME --force` (NAME one of {', '.join(names)})")


def _forced(snapshot: ClusterSnapshot, now: float, fs: FailoverState | None, ranking: Ranking) -> _Step | None:
    """An operator-forced failover (``SwitchoverRequest.force``, or the
    in-flight record of one) while nobody provably holds every acknowledged
    write: promote the named member anyway and say what may be lost. A target
    that cannot be forced (down, stopped, needs a re-clone, nofailover)
    clears the request with the reason. None: no forced request applies."""
    req = snapshot.switchover
    if fs is not None and fs.forced and fs.phase is Phase.PROMOTING and fs.term == snapshot.term + 1:
        target = fs.new_leader
    elif req is not None and req.failover and req.force and req.candidate:
        target = req.candidate
    else:
        return None
    c = ranking.get(target)
    if c is None or target not in forceable(ranking):
        why = f"forced failover to {target} impossible: {c.reason if c else 'unknown member'}"
        return State.NO_CANDIDATE, [ClearSwitchover(why)] if req is not None else [], why, ranking
    bound = promoted_bound(snapshot) or reference_lsn(snapshot)
    lost = max(0, bound - c.flush_lsn)
    why = (f"FORCED failover to {target} by the operator although {ranking.waiting}: {target} flushed "
           f"{c.flush_lsn}; up to {lost} bytes of acknowledged writes (those above it, up to {bound}) "
           f"may be lost")
    term = snapshot.term + 1
    if fs is not None and fs.forced and fs.new_leader == target and fs.term == term:
        return State.PROMOTING, [Promote(target, term, forced=True)], fs.reason, ranking
    old = snapshot.last_leader or (snapshot.sync.leader if snapshot.sync else "")
    new = FailoverState(kind=OperationKind.FAILOVER, phase=Phase.PROMOTING, term=term, old_leader=old,
                        new_leader=target, started_at=now, phase_since=now,
                        last_primary_lsn=max(bound, reference_lsn(snapshot)),
                        candidates=ranking.candidates, reason=why, ack_bound=promoted_bound(snapshot) or 0,
                        forced=True)
    return State.FAILING_OVER, [SaveFailoverState(new), Promote(target, term, forced=True)], why, ranking
