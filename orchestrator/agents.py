"""gRPC clients of the node agents: one channel per agent, parallel
``GetStatus`` probes, and a ``WatchStatus`` subscription per agent that wakes
the controller the moment something relevant changes or a stream breaks
(a broken stream + refused reconnect is how a killed primary shows up fast).

The one rule: a probe never blocks longer than ``rpc_timeout`` and always
says *how* it failed (refused vs timed out), see ``orchestrator.probe``.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

import grpc

from orchestrator.convert import agent_status_from_pb
from orchestrator.probe import AgentProbe, AgentStatus, ProbeOutcome
from protos import node_agent_pb2, node_agent_pb2_grpc
from walrus import grpcutil

log = logging.getLogger(__name__)

# Reconnect quickly: a restarted agent should be seen again within ~0.5 s.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 50),
                   ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 500))


def classify(exc: grpc.RpcError) -> ProbeOutcome:
    """Map a failed call to REFUSED / TIMEOUT / ERROR."""
    if grpcutil.is_connection_refused(exc):
        return ProbeOutcome.REFUSED
    if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
        return ProbeOutcome.TIMEOUT
    return ProbeOutcome.ERROR


def _significant(s: AgentStatus) -> tuple:
    e = s.engine
    return (e.role, e.timeline, e.term, e.streaming, e.fenced, e.upstream, e.needs_reclone,
            s.holds_leader, s.leader_term, e.sync_standbys)


class _Agent:
    """One agent: its channel, stub and status stream."""

    def __init__(self, name: str, address: str, on_event: Callable[[], None]) -> None:
        self.name = name
        self.address = address
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = node_agent_pb2_grpc.NodeAgentStub(self.channel)
        self._on_event = on_event
        self._stop = threading.Event()
        self._call = None
        self.stream_broken = False
        self._last_key: tuple | None = None
        self._thread = threading.Thread(target=self._watch, name=f"watch-{name}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._call = self.stub.WatchStatus(node_agent_pb2.WatchStatusRequest(min_interval_s=0.02))
                for msg in self._call:
                    if self.stream_broken:
                        self.stream_broken = False
                    key = _significant(agent_status_from_pb(msg))
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
        self._lock = threading.Lock()

    def set_members(self, members: dict[str, str]) -> None:
        with self._lock:
            for name in list(self._agents):
                agent = self._agents[name]
                if members.get(name) != agent.address:
                    agent.close()
                    del self._agents[name]
            for name, address in members.items():
                if address and name not in self._agents:
                    self._agents[name] = _Agent(name, address, self._on_event)

    def stub(self, name: str) -> node_agent_pb2_grpc.NodeAgentStub | None:
        with self._lock:
            agent = self._agents.get(name)
        return agent.stub if agent is not None else None

    def probe_all(self) -> dict[str, AgentProbe]:
        """``GetStatus`` of every known agent, in parallel, bounded by rpc_timeout."""
        with self._lock:
            agents = list(self._agents.values())
        futures = [(a, a.stub.GetStatus.future(node_agent_pb2.GetStatusRequest(), timeout=self.rpc_timeout))
                   for a in agents]
        probes = {}
        for agent, fut in futures:
            try:
                status = agent_status_from_pb(fut.result())
                probes[agent.name] = AgentProbe(agent.name, agent.address, ProbeOutcome.ANSWERED, status,
                                                stream_broken=agent.stream_broken)
            except grpc.RpcError as exc:
                probes[agent.name] = AgentProbe(agent.name, agent.address, classify(exc),
                                                detail=exc.details() or str(exc.code()),
                                                stream_broken=agent.stream_broken)
        return probes

    def close(self) -> None:
        self.set_members({})
