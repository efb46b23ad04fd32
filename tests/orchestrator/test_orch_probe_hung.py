"""``AgentPool.probe_all`` stops waiting for an agent whose last probes timed
out (a frozen ex-primary must not add ``rpc_timeout`` to the failover
decision), still asks it every time, and waits for it again once it answers.

A real gRPC server on 127.0.0.1 whose GetStatus blocks until the test lets it
go stands for a frozen agent (the port accepts, nothing answers)."""
from __future__ import annotations

import threading
from concurrent import futures

import grpc

from walrus_ha.orchestrator.agents import HUNG_AFTER, AgentPool
from walrus_ha.orchestrator.probe import ProbeOutcome
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc


class _Agent(node_agent_pb2_grpc.NodeAgentServicer):
    def __init__(self) -> None:
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.calls = 0

    def GetStatus(self, request, context):
        self.calls += 1
        if self.frozen.is_set():
            self.thawed.wait(120)
        return node_agent_pb2.NodeStatus()


def _serve(agent: _Agent) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    node_agent_pb2_grpc.add_NodeAgentServicer_to_server(agent, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _probe(pool: AgentPool, first: str | None = None):
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(pool.probe_all(first)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "probe_all waited for the hung agent"
    return box


def test_hung_agent_is_asked_but_not_waited_for_until_it_answers():
    hung, healthy = _Agent(), _Agent()
    servers = [_serve(hung), _serve(healthy)]
    woken = threading.Event()
    pool = AgentPool(0.3, on_event=woken.set)
    try:
        pool.set_members({"old": servers[0][1], "sb": servers[1][1]})
        assert _probe(pool, "old")["old"].outcome is ProbeOutcome.ANSWERED
        hung.frozen.set()
        for _ in range(HUNG_AFTER):                      # waited for, and timed out
            p = _probe(pool, "old")
            assert p["old"].outcome is ProbeOutcome.TIMEOUT and p["sb"].answered
        pool.rpc_timeout = 300.0                          # waiting for "old" now would block the test
        calls = hung.calls
        p = _probe(pool, "old")
        assert p["old"].outcome is ProbeOutcome.TIMEOUT and "not waited for" in p["old"].detail
        assert p["sb"].answered and hung.calls == calls + 1   # still asked
        woken.clear()
        hung.frozen.clear()
        hung.thawed.set()                                 # the late answer arrives
        assert woken.wait(60), "a hung agent's late answer did not wake the controller"
        pool.rpc_timeout = 5.0
        assert _probe(pool, "old")["old"].outcome is ProbeOutcome.ANSWERED
    finally:
        hung.thawed.set()
        pool.close()
        for server, _ in servers:
            server.stop(0)
