"""The ``Cluster`` gRPC service, served by every orchestrator (active or spare).

Thin: convert the request (``orchestrator.convert``), ask etcd or the
controller, convert back. Operator requests (Switchover, Failover, Pause,
Resume) are *written to etcd*; the active orchestrator executes them, so it
does not matter which orchestrator a client talks to. Errors are gRPC status
codes with one sentence and a reason code (``common.rpcerrors``):
INVALID_ARGUMENT for bad or stale arguments, FAILED_PRECONDITION (REFUSED)
when the cluster is not in a state to do it, UNAVAILABLE (DCS_UNAVAILABLE)
when etcd cannot be reached.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from walrus_ha.common import rpcerrors
from walrus_ha.common.errors import DcsUnavailable, InvalidArgument, LeaseLost, Refused, WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.common.names import name_problem
from walrus_ha.common.records import ClusterView, LeaderRecord
from walrus_ha.common.status import Role
from walrus_ha.orchestrator.agents import AgentPool
from walrus_ha.orchestrator.convert import candidate_to_pb, history_to_pb, leader_to_pb, role_to_pb
from walrus_ha.orchestrator.core.decide import forceable
from walrus_ha.orchestrator.member_ops import MemberOps
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc

log = logging.getLogger(__name__)


def leader_writable(view: ClusterView) -> bool:
    """True when the leader named in ``view`` accepts writes now, by its own
    member record: role primary, not fenced, at the leader key's term, and no
    enabled synchronous set of another leader or term is published (under
    one, a new leader acknowledges nothing until its own set appears; see
    ``NodeAgent.apply_sync``). Pure."""
    leader = view.leader
    if leader is None:
        return False
    member = view.member(leader.name)
    if member is None or member.role != Role.PRIMARY.value or member.fenced or member.term != leader.term:
        return False
    sync = view.sync
    if sync is not None and sync.num > 0 and sync.names and (sync.leader, sync.term) != (leader.name, leader.term):
        return False
    return True


class LeaderWatch:
    """The current leader record and whether it is writable
    (``leader_writable``), kept fresh by an etcd watch (plus a periodic
    re-read in case a watch event is missed); subscribers block in
    ``wait_change`` until the leader (name, term, presence) or its
    writability changes."""

    def __init__(self, dcs: Any, refresh_s: float = 1.0) -> None:
        self._dcs = dcs
        self._refresh_s = refresh_s
        self._cond = threading.Condition()
        self._version = 0
        self._leader: LeaderRecord | None = None
        self._writable = False
        self._known = False
        self._fresh_at = -1e18        # monotonic time of the last successful read
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._cancel: Callable[[], None] | None = None

    def start(self) -> None:
        self._cancel = self._dcs.watch_prefix(self._poke.set)
        threading.Thread(target=self._run, name="leader-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._cancel is not None:
            self._cancel()
        with self._cond:
            self._cond.notify_all()

    def _read(self) -> tuple[LeaderRecord | None, bool]:
        # One consistent read: the leader key, its member record and the sync key.
        view = self._dcs.read_view(deadline_s=1.0)
        self._fresh_at = time.monotonic()
        return view.leader, leader_writable(view)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._update(*self._read())
            except (DcsUnavailable, LeaseLost) as exc:
                log_event(log, "leader watch", level=logging.DEBUG, error=exc)
            self._poke.wait(self._refresh_s)
            self._poke.clear()

    def _update(self, leader: LeaderRecord | None, writable: bool) -> None:
        key = (leader.name, leader.term, writable) if leader else None
        with self._cond:
            old = (self._leader.name, self._leader.term, self._writable) if self._leader else None
            if not self._known or key != old or leader != self._leader:
                changed = not self._known or key != old
                self._leader, self._writable, self._known = leader, writable, True
                if changed:
                    self._version += 1
                    self._cond.notify_all()
                    log_event(log, "leader.seen", name=leader.name if leader else "-",
                              term=leader.term if leader else 0, writable=writable,
                              reason="no leader key" if leader is None else
                              "member record: primary, unfenced, own term and sync set" if writable else
                              "member record not yet primary, unfenced, own term and sync set")

    def current(self) -> tuple[int, LeaderRecord | None, bool]:
        """(version, leader, writable); reads etcd itself if the cached value
        is not fresh (never read, or etcd unreachable for a while): then
        raises DcsUnavailable rather than answer with a stale leader."""
        with self._cond:
            if self._known and time.monotonic() - self._fresh_at < max(2.0, 2 * self._refresh_s):
                return self._version, self._leader, self._writable
        self._update(*self._read())
        with self._cond:
            return self._version, self._leader, self._writable

    def wait_change(self, version: int, timeout: float) -> tuple[int, LeaderRecord | None, bool]:
        with self._cond:
            self._cond.wait_for(lambda: self._version != version or self._stop.is_set(), timeout)
            return self._version, self._leader, self._writable


def _abort_unavailable(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
    rpcerrors.abort(context, DcsUnavailable(f"etcd is unreachable: {exc}"))


def _refuse(context: grpc.ServicerContext, sentence: str) -> NoReturn:
    """FAILED_PRECONDITION, reason REFUSED: not possible in the cluster's state."""
    rpcerrors.abort(context, Refused(sentence))


def _invalid(context: grpc.ServicerContext, sentence: str) -> NoReturn:
    """INVALID_ARGUMENT, reason INVALID_ARGUMENT: a bad or stale argument."""
    rpcerrors.abort(context, InvalidArgument(sentence))


def _check_names(context: grpc.ServicerContext, **names: str) -> None:
    """INVALID_ARGUMENT (a short sentence) for a given name no member can have."""
    for field, value in names.items():
        why = name_problem(value, field) if value else None
        if why is not None:
            _invalid(context, why)


class ClusterService(cluster_pb2_grpc.ClusterServicer):
    """``Cluster`` on top of etcd (``dcs``), the leader watch and the controller."""

    def __init__(self, dcs: Any, controller: Any, leaders: LeaderWatch, *, rpc_timeout: float) -> None:
        self.dcs = dcs
        self.controller = controller
        self.leaders = leaders
        self._pool = AgentPool(rpc_timeout)   # probes for read RPCs, separate from the loop's
        self._pool_lock = threading.Lock()
        self.ops = MemberOps(dcs)

    def close(self) -> None:
        self._pool.close()

    def _observe(self, context: grpc.ServicerContext):
        try:
            with self._pool_lock:
                return self.controller.observe(watch=False, pool=self._pool)
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)

    def _view(self, context: grpc.ServicerContext):
        try:
            return self.dcs.read_view(deadline_s=self.dcs.timeout_s)
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)

    # -- leader ---------------------------------------------------------------------
    def GetLeader(self, request, context):
        try:
            _, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        return leader_to_pb(leader, writable)

    def WatchLeader(self, request, context):
        try:
            version, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        yield leader_to_pb(leader, writable)
        while context.is_active():
            new_version, leader, writable = self.leaders.wait_change(version, timeout=1.0)
            if new_version != version:
                version = new_version
                yield leader_to_pb(leader, writable)

    # -- members / explain ----------------------------------------------------
    def ListMembers(self, request, context):
        obs = self._observe(context)
        view, snap = obs.view, obs.snapshot
        sync_names = set(view.sync.names) if view.sync else set()
        leader = view.leader.name if view.leader else ""
        records = view.members_by_name
        base = snap.last_known_primary_lsn
        members = []
        for m in snap.members:
            rec = records.get(m.name)
            probe = obs.probes.get(m.name)
            tags = {str(k): str(v) for k, v in (rec.tags.items() if rec else ())}
            if probe is not None and probe.answered:
                tags.update(dict(probe.tags))
            members.append(cluster_pb2.Member(
                name=m.name, role=role_to_pb(m.role),
                agent_address=rec.agent_address if rec else (probe.address if probe else ""),
                data_address=rec.data_address if rec else "", timeline=m.timeline, term=m.term,
                flush_lsn=m.flush_lsn, replay_lsn=m.replay_lsn,
                lag_bytes=max(0, base - m.flush_lsn) if m.name != leader else 0,
                streaming=m.streaming, fenced=m.fenced, reachable=m.reachable, tags=tags,
                upstream=m.upstream, is_leader=m.name == leader, in_sync_set=m.name in sync_names,
                write_error=m.write_error, write_error_since=m.write_error_since,
                http=rec.api_url if rec else "", needs_reclone=m.needs_reclone,
                state=probe.state if probe is not None and probe.answered else "",
                restart_left_s=max(0.0, m.restarting_until - time.time()) if m.restarting_until else 0.0,
                pending_restart=list(rec.pending_restart) if rec else [],
                config_revision=rec.config_revision if rec else 0))
        state = self.controller.state.value if self.controller.election.is_active() else "spare"
        sync = ""
        if view.sync and view.sync.num and view.sync.names:
            sync = f"{view.sync.method.upper()} {view.sync.num} ({', '.join(view.sync.names)})"
        sw = view.switchover if isinstance(view.switchover, dict) else None
        return cluster_pb2.ListMembersReply(
            members=members, leader=leader_to_pb(view.leader), state=state, paused=view.paused, sync_standbys=sync,
            switchover_pending=sw is not None, switchover_candidate=str(sw.get("candidate", "")) if sw else "",
            switchover_scheduled_at=float(sw.get("scheduled_at", 0) or 0) if sw else 0.0)

    def ExplainFailover(self, request, context):
        obs = self._observe(context)
        ranking = self.controller.explain(obs)
        candidates = [candidate_to_pb(c.to_dict()) for c in ranking.candidates]
        state = self.controller.state.value if self.controller.election.is_active() else "spare"
        detail = ranking.waiting or (f"{ranking.winner} would be promoted now" if ranking.winner else "")
        return cluster_pb2.ExplainFailoverReply(winner=ranking.winner or "", candidates=candidates,
                                                state=state, detail=detail)

    # -- operator requests ----------------------------------------------------------
    def Switchover(self, request, context):
        view = self._view(context)
        candidate, expected = request.candidate.strip(), request.expected_leader.strip()
        _check_names(context, candidate=candidate, expected_leader=expected)
        if view.leader is None:
            _refuse(context,
                    "there is no leader to switch over from; use Failover instead")
        leader = view.leader.name
        if expected and expected != leader:
            _invalid(context,
                     f"expected leader {expected!r} but the leader is {leader!r}")
        if candidate:
            self._check_candidate(context, view, candidate)
        _check_not_paused(context, view)
        self._check_can_win(context, candidate, force=False)
        at = request.scheduled_at
        if at and not (time.time() - 60 < at < time.time() + 366 * 86400):    # also refuses NaN
            _invalid(context, f"scheduled_at {at!r} is not a time between a minute ago and a year from now")
        return self._request(context, view, candidate, expected or leader, failover=False, scheduled_at=at)

    def Failover(self, request, context):
        view = self._view(context)
        candidate = request.candidate.strip()
        if not candidate:
            _invalid(context, "a failover needs a candidate")
        _check_names(context, candidate=candidate)
        self._check_candidate(context, view, candidate)
        _check_not_paused(context, view)
        if view.leader is None:
            self._check_can_win(context, candidate, force=request.force)
        elif request.force:
            _refuse(context,
                    f"{view.leader.name} leads: --force only applies when there is no leader")
        else:
            self._check_can_win(context, candidate, force=False)
        return self._request(context, view, candidate, "", failover=True, force=request.force)

    def _check_can_win(self, context: grpc.ServicerContext, candidate: str, force: bool) -> None:
        """Refuse up front what the core would refuse: the ranking it uses
        (leader excluded) must make ``candidate`` eligible, or, forced, leave
        no winner and ``candidate`` forceable. Without a candidate, someone
        must be able to win."""
        ranking = self.controller.explain(self._observe(context))
        c = ranking.get(candidate) if candidate else None
        if not candidate:
            if ranking.winner is None:
                _refuse(context, f"no member can take over: {ranking.waiting}")
            return
        if c is not None and c.eligible and not force:
            if ranking.winner is None:
                _refuse(context,
                        f"{candidate} cannot take over yet: {ranking.waiting}{_force_hint(ranking, candidate)}")
            return
        if force:
            if ranking.winner is not None:
                _refuse(context,
                        f"refusing to force: {ranking.winner} holds every acknowledged write; "
                        f"fail over to it instead")
            if candidate not in forceable(ranking):
                _refuse(context,
                        f"{candidate} cannot be promoted even by force: {c.reason if c else 'unknown'}")
            return
        sync = ranking.waiting or ""
        _refuse(context,
                f"{candidate} cannot take over: {c.reason if c else 'unknown member'}"
                f"{'; ' + sync if sync else ''}{_force_hint(ranking, candidate)}")

    @staticmethod
    def _check_candidate(context: grpc.ServicerContext, view, candidate: str) -> None:
        if view.member(candidate) is None:
            known = ", ".join(sorted(m.name for m in view.members)) or "none"
            _invalid(context,
                     f"unknown candidate {candidate!r} (members: {known})")
        if view.leader is not None and view.leader.name == candidate:
            _invalid(context, f"{candidate!r} is already the leader")

    def _request(self, context, view, candidate: str, expected: str, failover: bool, force: bool = False,
                 scheduled_at: float = 0.0):
        _check_not_paused(context, view)
        value = {"candidate": candidate, "expected_leader": expected, "leader": expected,
                 "failover": failover, "force": force, "requested_at": time.time()}
        if scheduled_at:
            value["scheduled_at"] = scheduled_at
        what = "failover" if failover else "switchover"
        try:
            written = self.dcs.cas_put(self.dcs.keys.switchover, value, 0, deadline_s=self.dcs.timeout_s)
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        if not written:
            _refuse(context,
                    "another switchover or failover request is pending")
        log_event(log, "operator request", logging.WARNING if force else logging.INFO, kind=what,
                  candidate=candidate or "(best)", expected_leader=expected or "(any)", force=force)
        detail = f"{'FORCED ' if force else ''}{what} to {candidate or 'the best standby'} requested"
        if scheduled_at:
            detail += f", scheduled in {scheduled_at - value['requested_at']:.0f}s"
        return cluster_pb2.OperationReply(accepted=True, detail=detail, leader=leader_to_pb(view.leader),
                                          requested_at=value["requested_at"])

    def GetOperation(self, request, context):
        """The fate of the request written at ``requested_at``: pending, or its
        recorded outcome; plus the active orchestrator's state as progress."""
        try:
            pending, _ = self.dcs.get(self.dcs.keys.switchover, deadline_s=self.dcs.timeout_s)
            ended, _ = self.dcs.get(self.dcs.keys.switchover_outcome, deadline_s=self.dcs.timeout_s)
            _, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)

        def mine(rec: object) -> bool:
            return isinstance(rec, dict) and rec.get("requested_at") == request.requested_at
        reply = cluster_pb2.OperationStatus(pending=mine(pending), leader=leader_to_pb(leader, writable))
        if mine(ended):
            reply.outcome, reply.reason = str(ended.get("outcome", "")), str(ended.get("reason", ""))
        if self.controller.election.is_active():
            last = getattr(self.controller, "last_decision", None)
            reply.state, reply.detail = self.controller.state.value, last.reason if last is not None else ""
        else:
            reply.state = "spare"
        return reply

    def CancelSwitchover(self, request, context):
        try:
            req = self.ops.cancel_switchover()
            _, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        if req is None:
            _refuse(context, "no switchover or failover request is pending")
        what = "failover" if req.get("failover") else "switchover"
        return cluster_pb2.OperationReply(
            accepted=True, leader=leader_to_pb(leader, writable),
            requested_at=float(req.get("requested_at", 0) or 0),
            detail=f"{what} to {req.get('candidate') or 'the best standby'} cancelled")

    def RestartMember(self, request, context):
        member = self._member(context, request.member)
        return self._member_op(context, lambda: self.ops.restart(member, request.role, request.pending,
                                                                 request.force, request.timeout_s))

    def ReinitMember(self, request, context):
        member = self._member(context, request.member)
        return self._member_op(context, lambda: self.ops.reinit(member, request.force))

    @staticmethod
    def _member(context: grpc.ServicerContext, name: str) -> str:
        name = name.strip()
        if not name:
            _invalid(context, "a member name is required")
        _check_names(context, member=name)
        return name

    def _member_op(self, context, fn: Callable[[], tuple[bool, str]]):
        try:
            _, detail = fn()      # changed or not (--pending with nothing pending): done, detail says which
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        except WalrusError as exc:
            rpcerrors.abort(context, exc)
        try:
            _, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost):
            leader, writable = None, False
        return cluster_pb2.OperationReply(accepted=True, detail=detail, leader=leader_to_pb(leader, writable))

    def Pause(self, request, context):
        return self._set_pause(context, True)

    def Resume(self, request, context):
        return self._set_pause(context, False)

    def _set_pause(self, context, paused: bool):
        try:
            self.dcs.set_pause(paused, deadline_s=self.dcs.timeout_s)
            _, leader, writable = self.leaders.current()
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        log_event(log, "operator request", kind="pause" if paused else "resume")
        return cluster_pb2.OperationReply(
            accepted=True, leader=leader_to_pb(leader, writable),
            detail="automatic failover paused" if paused else "automatic failover resumed")

    def History(self, request, context):
        limit = request.limit or 100
        try:
            records = self.dcs.list_history(limit, deadline_s=self.dcs.timeout_s)
        except (DcsUnavailable, LeaseLost) as exc:
            _abort_unavailable(context, exc)
        return cluster_pb2.HistoryReply(records=[history_to_pb(r) for r in records])


def _force_hint(ranking, candidate: str) -> str:
    if ranking.winner is None and candidate in forceable(ranking):
        return (f"; to promote {candidate} anyway, accepting the loss of acknowledged writes it lacks: "
                f"walrus ctl failover --to {candidate} --force")
    return ""


def _check_not_paused(context: grpc.ServicerContext, view) -> None:
    if view.paused:
        _refuse(context,
                "the cluster is paused: no switchover or failover happens until Resume")
