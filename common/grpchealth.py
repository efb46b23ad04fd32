"""gRPC health (``grpc.health.v1``) and server reflection for every walrus
gRPC port: the agent's control port, the embedded engine's data port and the
orchestrator's port.

The one rule: one ``HealthBoard`` per process holds the serving status of
each service name; every server of the process attached to it answers from
it. Names: ``""`` (the process is up), the full name of each gRPC service it
serves, and the role names below, which are SERVING only while the role
holds (``node.agent.rolehealth`` and the orchestrator keep them current).
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

PRIMARY = "walrus.primary"                     # the primary holding a valid lease, unfenced
REPLICA = "walrus.replica"                     # a streaming standby
ORCHESTRATOR_ACTIVE = "walrus.orchestrator.active"
AIO_WATCH_POLL_S = 0.1

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthBoard:
    """Thread-safe service name -> serving flag, mirrored into the servers
    attached with ``attach`` (sync) or ``attach_aio`` (grpc.aio)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: dict[str, bool] = {}
        self._servicers: list[health.HealthServicer] = []

    def set(self, name: str, serving: bool) -> None:
        with self._lock:
            if self._status.get(name) == serving:
                return
            self._status[name] = serving
            servicers = list(self._servicers)
        for s in servicers:
            s.set(name, _SERVING if serving else _NOT_SERVING)

    def set_all(self, names: Iterable[str], serving: bool) -> None:
        for name in names:
            self.set(name, serving)

    def get(self, name: str) -> bool | None:
        """The flag of ``name``; None for a name never set (gRPC: NOT_FOUND)."""
        with self._lock:
            return self._status.get(name)

    def attach(self, server: grpc.Server, services: Iterable[str]) -> None:
        """Add Health and reflection (for ``services`` + both) to a sync server."""
        servicer = health.HealthServicer()
        with self._lock:
            for name, serving in self._status.items():
                servicer.set(name, _SERVING if serving else _NOT_SERVING)
            self._servicers.append(servicer)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        _reflect(server, services)

    def attach_aio(self, server: grpc.aio.Server, services: Iterable[str]) -> None:
        """Add Health and reflection to a grpc.aio server (Watch polls the board)."""
        health_pb2_grpc.add_HealthServicer_to_server(_AioHealth(self), server)
        _reflect(server, services)


def _reflect(server: grpc.Server | grpc.aio.Server, services: Iterable[str]) -> None:
    names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)


def service_names(*modules: object) -> list[str]:
    """Full names of the services in generated ``*_pb2`` modules."""
    return [s.full_name for m in modules for s in m.DESCRIPTOR.services_by_name.values()]  # type: ignore[attr-defined]


class _AioHealth(health_pb2_grpc.HealthServicer):
    """Health on grpc.aio, read from the board (set from any thread)."""

    def __init__(self, board: HealthBoard):
        self._board = board

    def _response(self, name: str) -> health_pb2.HealthCheckResponse:
        serving = self._board.get(name)
        status = (health_pb2.HealthCheckResponse.SERVICE_UNKNOWN if serving is None
                  else _SERVING if serving else _NOT_SERVING)
        return health_pb2.HealthCheckResponse(status=status)

    async def Check(self, request, context):
        if self._board.get(request.service) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return self._response(request.service)

    async def Watch(self, request, context):
        last = None
        while True:
            resp = self._response(request.service)
            if resp.status != last:
                last = resp.status
                yield resp
            await asyncio.sleep(AIO_WATCH_POLL_S)


__all__ = ["HealthBoard", "PRIMARY", "REPLICA", "ORCHESTRATOR_ACTIVE", "service_names"]
