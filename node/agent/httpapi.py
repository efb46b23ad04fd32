"""The agent's HTTP API for load balancers and probes (``api_listen``,
default ``127.0.0.1:8008`` like Patroni's REST API).

The one rule: a handler never waits on the engine or etcd. It reads the
agent's last published status, its lease and its last etcd view
(``NodeAgent.probe_facts``/``probe_status``: attribute reads and a short
lock) and lets ``probes.answer`` decide; so it answers in well under a
millisecond of work even while the engine is being promoted or fenced.

The server itself is ``common.httpserver`` (shared with the orchestrator's
``metrics_listen``): exact-path routes, ``register(path, handler)`` adds one
(``/metrics``: ``node.agent.metrics``), GET, HEAD and OPTIONS alike, bind
retried on "address in use" under a deadline.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from walrus_ha.common.httpserver import (
    BIND_DEADLINE_S,
    ApiListenError,
    Handler,
    HttpApi,
    Response,
    json_response,
)
from walrus_ha.node.agent import probes
from walrus_ha.node.agent.status import AgentStatus


def member_document(status: AgentStatus | None, facts: probes.MemberFacts, api_url: str = "") -> dict:
    """The JSON body: the agent's last status (``AgentStatus``, enums as their
    values, LSNs as byte positions) plus what the probes concluded."""
    doc: dict = _plain(dataclasses.asdict(status)) if status is not None else {}  # type: ignore[assignment]
    doc.update({
        "http": api_url, "primary": probes.is_primary(facts), "replica": probes.is_replica(facts),
        "lease_valid": facts.lease_valid, "lag_bytes": facts.lag_bytes, "in_sync_set": facts.in_sync_set,
        "loop_age_s": round(facts.loop_age_s, 3),
    })
    return doc


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def probe_routes(facts: Callable[[], probes.MemberFacts], status: Callable[[], dict]) -> dict[str, Handler]:
    """One handler per ``probes.PATHS`` path: the code from ``probes.answer``,
    the member's JSON status as the body (an unreadable ``lag``: 400 with the
    reason)."""
    def route(path: str) -> Handler:
        def handle(query: dict[str, list[str]]) -> Response:
            code = probes.answer(path, query, facts())
            if code == probes.BAD_REQUEST:
                return json_response(code, {"error": f"lag: not a size: {query['lag'][-1]!r}"})
            return json_response(code, status())
        return handle
    return {path: route(path) for path in probes.PATHS}


__all__ = ["HttpApi", "Response", "Handler", "ApiListenError", "json_response", "member_document", "probe_routes",
           "BIND_DEADLINE_S"]
