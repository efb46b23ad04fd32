"""The agent's HTTP API for load balancers and probes (``api_listen``,
default ``127.0.0.1:8008`` like Patroni's REST API).

The one rule: a handler never waits on the engine or etcd. It reads the
agent's last published status, its lease and its last etcd view
(``NodeAgent.probe_facts``/``probe_status``: attribute reads and a short
lock) and lets ``probes.answer`` decide; so it answers in well under a
millisecond of work even while the engine is being promoted or fenced.

Routes are exact paths; ``register(path, handler)`` adds one (``/metrics``
is meant to be registered this way). GET, HEAD and OPTIONS answer alike
(HEAD without a body). A stdlib ``ThreadingHTTPServer`` in a daemon thread;
binding retries "address in use" under a deadline (a previous agent on the
same port may still be exiting).
"""
from __future__ import annotations

import dataclasses
import enum
import errno
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from walrus_ha.common.errors import WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.node.agent import probes
from walrus_ha.node.agent.status import AgentStatus

log = logging.getLogger(__name__)

BIND_DEADLINE_S = 10.0
REQUEST_TIMEOUT_S = 5.0     # a client that sends nothing is dropped after this


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes = b""
    content_type: str = "application/json"


Handler = Callable[[dict[str, list[str]]], Response]


class ApiListenError(WalrusError):
    """The HTTP API port could not be bound."""


def json_response(code: int, data: object) -> Response:
    return Response(code, (json.dumps(data, sort_keys=True) + "\n").encode())


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


class HttpApi:
    """``start()`` binds and serves in a thread; ``stop()`` closes. ``port``
    is the bound port (useful with port 0)."""

    def __init__(self, listen: str, routes: dict[str, Handler] | None = None,
                 bind_deadline_s: float = BIND_DEADLINE_S):
        self.listen = listen
        self.routes: dict[str, Handler] = dict(routes or {})
        self.bind_deadline_s = bind_deadline_s
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def register(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact, no query) with ``handler``."""
        self.routes[path] = handler

    def start(self) -> None:
        """Bind (retrying EADDRINUSE until the deadline; then ApiListenError) and serve."""
        host, _, port_text = self.listen.rpartition(":")    # checked by NodeConfig; 0 = any free port
        host, port = host.strip("[]"), int(port_text)
        api = self

        class _Handler(_RequestHandler):
            routes = api.routes

        def bind() -> ThreadingHTTPServer:
            return _Server((host, port), _Handler)

        try:
            for attempt in Retrying(retry=retry_if_exception(_in_use), stop=stop_after_delay(self.bind_deadline_s),
                                    wait=wait_random_exponential(multiplier=0.05, max=1.0), reraise=True):
                with attempt:
                    server = bind()
        except OSError as exc:
            raise ApiListenError(f"api_listen: cannot listen on {self.listen}: {exc.strerror or exc}") from None
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http-api", daemon=True)
        self._thread.start()
        log_event(log, "http_api.listening", listen=f"{host}:{self.port}")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True      # TIME_WAIT of a previous agent is no reason to wait
    request_queue_size = 64


class _RequestHandler(BaseHTTPRequestHandler):
    routes: dict[str, Handler] = {}
    protocol_version = "HTTP/1.1"
    server_version = "walrus"
    timeout = REQUEST_TIMEOUT_S

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        handler = self.routes.get(path)
        try:
            resp = (handler(parse_qs(url.query)) if handler is not None
                    else json_response(probes.NOT_FOUND, {"error": f"no such path: {path}"}))
        except Exception as exc:        # a bug: say so, keep serving
            log.exception("HTTP API handler for %s failed", path)
            resp = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-store")
        if self.command == "OPTIONS":
            self.send_header("Allow", "GET, HEAD, OPTIONS")
        self.end_headers()
        if body:
            self.wfile.write(resp.body)

    def do_GET(self) -> None:       # noqa: N802 (the stdlib's names)
        self._answer(body=True)

    def do_OPTIONS(self) -> None:   # noqa: N802
        self._answer(body=True)

    def do_HEAD(self) -> None:      # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:   # noqa: A002
        pass                        # health checks every second would flood the log


__all__ = ["HttpApi", "Response", "Handler", "ApiListenError", "json_response", "member_document", "probe_routes"]
