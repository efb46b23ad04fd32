"""gRPC clients of the node agents: one channel per agent, parallel
``GetStatus`` probes, and a ``WatchStatus`` subscription per agent that wakes
the controller the moment something relevant changes or a stream breaks
(a broken stream + refused reconnect is how a killed primary shows up fast).

The one rule: a probe never blocks longer than ``rpc_timeout`` and always
says *how* it failed (refused vs timed out), see ``orchestrator.probe``.
An agent whose last ``HUNG_AFTER`` probes timed out (frozen, partitioned) is
still asked every time but no longer waited for: the tick takes its answer
if it is already there, else TIMEOUT, and a late answer wakes the controller
(the next tick waits for that agent again). So a hung ex-primary does not
add ``rpc_timeout`` to the failover decision once its lease expired.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc

from walrus_ha.common import grpcutil
from walrus_ha.common.status import Role
from walrus_ha.orchestrator.convert import probe_from_pb
from walrus_ha.orchestrator.core.model import MemberView
from walrus_ha.orchestrator.probe import AgentProbe, ProbeOutcome
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger(__name__)

HUNG_AFTER = 2      # timed-out probes in a row after which a tick no longer waits for the agent

# Reconnect quickly: a restarted agent should be seen again within ~0.5 s.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 50),
                   ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 500))


def classify(exc: grpc.RpcError, address: str) -> ProbeOutcome:
    """Map a failed call to ``address`` to REFUSED / TIMEOUT / ERROR. REFUSED
    is decided by a TCP connect to ``address`` (``grpcutil.is_connection_refused``),
    never by the error's message."""
    if grpcutil.is_connection_refused(exc, address):
        return ProbeOutcome.REFUSED
    if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
        return ProbeOutcome.TIMEOUT
    return ProbeOutcome.ERROR


def _significant(p: AgentProbe) -> tuple:
    m = p.member
    return (m.role, m.timeline, m.term, m.streaming, m.fenced, m.upstream, m.needs_reclone,
            p.holds_leader, p.leader_term, m.sync_applied)


class _Agent:
    """One agent: its channel, stub and status stream."""

    def __init__(self, name: str, address: str, on_event: Callable[[], None], watch: bool) -> None:
        self.name = name
        self.address = address
        self.watch = watch
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = node_agent_pb2_grpc.NodeAgentStub(self.channel)
        self._on_event = on_event
        self._stop = threading.Event()
        self._call = None
        self.stream_broken = False
        self.timeouts = 0               # probes in a row that timed out (HUNG_AFTER)
        self._last_key: tuple | None = None
        self.primary_flush: tuple[int, int] | None = None   # (term, highest flush LSN) pushed as primary
        if watch:
            threading.Thread(target=self._watch, name=f"watch-{name}", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._call = self.stub.WatchStatus(node_agent_pb2.WatchStatusRequest(min_interval_s=0.02))
                for msg in self._call:
                    if self.stream_broken:
                        self.stream_broken = False
                    probe = probe_from_pb(self.name, self.address, msg)
                    self._note_primary(probe.member)
                    key = _significant(probe)
                    if key != self._last_key:
                        self._last_key = key
                        self._on_event()
            except grpc.RpcError:
                pass
            except Exception:  # never let a watcher thread die silently
                log.exception("status stream of %s failed", self.name)
            if self._stop.is_set():
                return
            if not self.stream_broken:
                self.stream_broken = True
                self._last_key = None
                self._on_event()
            self._stop.wait(0.1)

    def _note_primary(self, m: MemberView) -> None:
        """Remember the highest flush LSN this agent pushed while primary (per
        term): the freshest the orchestrator can know of a primary that dies
        between two loops (its last push is at most ~50 ms old)."""
        if m.role is not Role.PRIMARY:
            return
        seen = self.primary_flush
        if seen is None or m.term > seen[0]:
            self.primary_flush = (m.term, m.flush_lsn)
        elif m.term == seen[0] and m.flush_lsn > seen[1]:
            self.primary_flush = (m.term, m.flush_lsn)

    def close(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self.channel.close()


class AgentPool:
    """Clients of every member's agent, keyed by member name.

    ``set_members({name: agent_address})`` opens/closes clients as members
    come and go; ``probe_all()`` calls every agent's ``GetStatus`` in
    parallel; ``stub(name)`` is used by the executor. ``on_event`` is called
    (from a watcher thread) when an agent's status changes or its stream
    breaks; it must be cheap (e.g. set an Event).
    """

    def __init__(self, rpc_timeout: float, on_event: Callable[[], None] = lambda: None) -> None:
        self.rpc_timeout = rpc_timeout
        self._on_event = on_event
        self._agents: dict[str, _Agent] = {}
        self._retired: dict[str, tuple[int, int]] = {}   # primary_flush of closed clients
        self._lock = threading.Lock()

    def set_members(self, members: dict[str, str], watch: bool = False) -> None:
        """Keep clients for exactly ``members``; ``watch``: subscribe to their
        status streams (the active orchestrator) or not (a spare)."""
        with self._lock:
            for name in list(self._agents):
                agent = self._agents[name]
                if members.get(name) != agent.address or agent.watch != watch:
                    if agent.primary_flush is not None:
                        self._retired[name] = agent.primary_flush
                    agent.close()
                    del self._agents[name]
            for name, address in members.items():
                if address and name not in self._agents:
                    self._agents[name] = _Agent(name, address, self._on_event, watch)

    def primary_flush(self, name: str) -> tuple[int, int] | None:
        """``(term, flush LSN)``: the highest flush LSN ``name``'s status
        stream reported while it was primary, or None."""
        with self._lock:
            agent = self._agents.get(name)
            retired = self._retired.get(name)
        seen = [v for v in (agent.primary_flush if agent is not None else None, retired) if v is not None]
        return max(seen) if seen else None

    def stub(self, name: str) -> node_agent_pb2_grpc.NodeAgentStub | None:
        with self._lock:
            agent = self._agents.get(name)
        return agent.stub if agent is not None else None

    def address(self, name: str) -> str:
        """The agent address ``name``'s client calls ("" if none)."""
        with self._lock:
            agent = self._agents.get(name)
        return agent.address if agent is not None else ""

    def probe_all(self, first: str | None = None) -> dict[str, AgentProbe]:
        """``GetStatus`` of every known agent, bounded by rpc_timeout each.

        ``first`` (the leader) is asked before the others, which are then
        asked in parallel: standby LSNs are never older than the leader's.
        Hung agents (``HUNG_AFTER``) are asked too but not waited for.
        """
        with self._lock:
            agents = sorted(self._agents.values(), key=lambda a: a.name != first)
        hung = [self._ask(a) for a in agents if a.timeouts >= HUNG_AFTER]
        for agent, fut in hung:
            fut.add_done_callback(lambda f, a=agent: self._late_answer(a, f))
        agents = [a for a in agents if a.timeouts < HUNG_AFTER]
        probes: dict[str, AgentProbe] = {}
        if agents and agents[0].name == first:
            self._collect(probes, [self._ask(agents.pop(0))])
        self._collect(probes, [self._ask(a) for a in agents])
        self._collect(probes, [(a, f) for a, f in hung if f.done()])
        for agent, _ in hung:
            if agent.name not in probes:
                probes[agent.name] = AgentProbe(agent.name, agent.address, ProbeOutcome.TIMEOUT,
                                                detail=f"no answer to the last {agent.timeouts} probes; not waited for",
                                                stream_broken=agent.stream_broken)
        return probes

    def _ask(self, agent: _Agent):
        return agent, agent.stub.GetStatus.future(node_agent_pb2.GetStatusRequest(), timeout=self.rpc_timeout)

    def _late_answer(self, agent: _Agent, fut) -> None:
        """A hung agent answered after all: wait for it again, and look again now."""
        if not fut.cancelled() and fut.exception() is None:
            agent.timeouts = 0
            self._on_event()

    @staticmethod
    def _collect(probes: dict[str, AgentProbe], futures: list) -> None:
        for agent, fut in futures:
            try:
                probes[agent.name] = probe_from_pb(agent.name, agent.address, fut.result(),
                                                   stream_broken=agent.stream_broken)
                agent.timeouts = 0
            except grpc.RpcError as exc:
                outcome = classify(exc, agent.address)
                agent.timeouts = agent.timeouts + 1 if outcome is ProbeOutcome.TIMEOUT else 0
                probes[agent.name] = AgentProbe(agent.name, agent.address, outcome,
                                                detail=exc.details() or str(exc.code()),
                                                stream_broken=agent.stream_broken)

    def close(self) -> None:
        self.set_members({})
