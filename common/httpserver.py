"""A small HTTP server for read-only endpoints: the agent's HTTP API
(``node.agent.httpapi``) and the orchestrator's ``/metrics`` listener.

The one rule: a handler answers from state already in memory (never waits on
an engine, etcd or an RPC), so a request costs well under a millisecond of
work while the process is busy failing over.

Routes are exact paths; ``register(path, handler)`` adds one. GET, HEAD and
OPTIONS answer alike (HEAD without a body). A stdlib ``HTTPServer`` accepting
in a daemon thread and a pool of ``WORKERS`` daemon threads serving the
connections (one thread each beyond that); binding retries "address in use"
under a deadline (a previous process on the same port may still be
exiting), then raises ``ApiListenError``.
"""
from __future__ import annotations

import errno
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from walrus_ha.common.errors import WalrusError
from walrus_ha.common.log import log_event

log = logging.getLogger(__name__)

BIND_DEADLINE_S = 10.0
REQUEST_TIMEOUT_S = 5.0     # a client that sends nothing is dropped after this
WORKERS = 8                 # pooled connection threads (more connections get a thread each)
NOT_FOUND = 404


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes = b""
    content_type: str = "application/json"


Handler = Callable[[dict[str, list[str]]], Response]
Observer = Callable[[str, float], None]
OTHER = "other"             # the route an unknown path is observed under


class ApiListenError(WalrusError):
    """The HTTP port could not be bound."""


def json_response(code: int, data: object) -> Response:
    return Response(code, (json.dumps(data, sort_keys=True) + "\n").encode())


class HttpApi:
    """``start()`` binds and serves in a thread; ``stop()`` closes. ``port``
    is the bound port (useful with port 0). ``what`` names the listener in
    errors and logs (the config key it comes from). ``observe(route,
    seconds)``, if given, is told each request's time in the server: from
    parsing its request line to its answer written (``route`` is the
    registered path, or ``other``)."""

    def __init__(self, listen: str, routes: dict[str, Handler] | None = None,
                 bind_deadline_s: float = BIND_DEADLINE_S, what: str = "api_listen",
                 observe: Observer | None = None):
        self.listen = listen
        self.routes: dict[str, Handler] = dict(routes or {})
        self.bind_deadline_s = bind_deadline_s
        self.what = what
        self.observe = observe
        self.port = 0
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def register(self, path: str, handler: Handler) -> None:
        """Serve ``path`` (exact, no query) with ``handler``."""
        self.routes[path] = handler

    def start(self) -> None:
        """Bind (retrying EADDRINUSE until the deadline; then ApiListenError) and serve."""
        host, _, port_text = self.listen.rpartition(":")    # checked by the config; 0 = any free port
        host, port = host.strip("[]"), int(port_text)
        api = self

        class _Handler(_RequestHandler):
            routes = api.routes
            observe = staticmethod(api.observe) if api.observe is not None else None

        def bind() -> HTTPServer:
            return _Server((host, port), _Handler)

        try:
            for attempt in Retrying(retry=retry_if_exception(_in_use), stop=stop_after_delay(self.bind_deadline_s),
                                    wait=wait_random_exponential(multiplier=0.05, max=1.0), reraise=True):
                with attempt:
                    server = bind()
        except OSError as exc:
            raise ApiListenError(f"{self.what}: cannot listen on {self.listen}: {exc.strerror or exc}") from None
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http-api", daemon=True)
        self._thread.start()
        log_event(log, "http_api.listening", listen=f"{host}:{self.port}", what=self.what)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


class _Server(HTTPServer):
    """Connections go to ``WORKERS`` long-lived daemon threads, not to a new
    thread each (``ThreadingHTTPServer``): a thread start per request cost
    about as much CPU as the rest of a probe request (docs/internals.md,
    "Metrics", HTTP latency). When every worker is busy (e.g. clients that
    connect and send nothing, dropped after ``REQUEST_TIMEOUT_S``), a
    connection gets a thread of its own as before, so a probe never waits
    behind them."""
    allow_reuse_address = True      # TIME_WAIT of a previous process is no reason to wait
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = WORKERS
        self._workers = [threading.Thread(target=self._work, name=f"http-api-{i}", daemon=True)
                         for i in range(WORKERS)]
        for t in self._workers:
            t.start()
        super().__init__(address, handler)      # a failed bind calls server_close: the workers end

    def process_request(self, request, client_address) -> None:   # type: ignore[no-untyped-def]
        with self._lock:
            pooled = self._idle > 0
            if pooled:
                self._idle -= 1
        if pooled:
            self._queue.put((request, client_address))
        else:
            threading.Thread(target=self._serve, args=(request, client_address), name="http-api-extra",
                             daemon=True).start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._serve(*item)
            with self._lock:
                self._idle += 1

    def _serve(self, request, client_address) -> None:   # type: ignore[no-untyped-def]
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        for _ in self._workers:
            self._queue.put(None)


class _RequestHandler(BaseHTTPRequestHandler):
    routes: dict[str, Handler] = {}
    observe: Observer | None = None
    protocol_version = "HTTP/1.1"
    server_version = "walrus"
    timeout = REQUEST_TIMEOUT_S
    _began = 0.0

    def parse_request(self) -> bool:
        self._began = time.perf_counter()      # the request line is in; observe() counts from here
        return super().parse_request()

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        handler = self.routes.get(path)
        try:
            resp = (handler(parse_qs(url.query)) if handler is not None
                    else json_response(NOT_FOUND, {"error": f"no such path: {path}"}))
        except Exception as exc:        # a bug: say so, keep serving
            log.exception("HTTP handler for %s failed", path)
            resp = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-store")
        if self.command == "OPTIONS":
            self.send_header("Allow", "GET, HEAD, OPTIONS")
        # One write for head and body (end_headers + a body write are two):
        # each blocking call gives up the GIL, and getting it back is what a
        # busy process makes slow.
        # The stdlib's header buffer; end_headers would add the blank line and flush.
        head: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
        head.append(b"\r\n")
        if body:
            head.append(resp.body)
        self.flush_headers()
        if self.observe is not None:
            self.observe(path if handler is not None else OTHER, time.perf_counter() - self._began)

    def do_GET(self) -> None:       # noqa: N802 (the stdlib's names)
        self._answer(body=True)

    def do_OPTIONS(self) -> None:   # noqa: N802
        self._answer(body=True)

    def do_HEAD(self) -> None:      # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:   # noqa: A002
        pass                        # health checks every second would flood the log


__all__ = ["HttpApi", "Response", "Handler", "Observer", "OTHER", "ApiListenError", "json_response", "BIND_DEADLINE_S"]
