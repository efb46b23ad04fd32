"""common/httpserver.py on a real loopback socket: connections beyond the
worker pool (clients that connect and send nothing) do not hold up a
request, and stop() ends every thread the server started."""
from __future__ import annotations

import http.client
import socket
import threading
import time

from walrus_ha.common import httpserver


def get(port, path="/x"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2 * httpserver.REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_silent_clients_beyond_the_pool_do_not_block_a_request():
    before = threading.active_count()
    api = httpserver.HttpApi("127.0.0.1:0", {"/x": lambda q: httpserver.Response(200, b"ok", "text/plain")})
    api.start()
    silent = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(httpserver.WORKERS + 2)]
    try:
        # every worker now waits (up to REQUEST_TIMEOUT_S) on a silent client
        assert get(api.port) == (200, b"ok")
        for s in silent:       # still open: the request was not served after a silent one was dropped
            try:
                assert s.recv(1, socket.MSG_DONTWAIT) != b""
            except BlockingIOError:
                pass
        assert [get(api.port)[0] for _ in range(3 * httpserver.WORKERS)] == [200] * (3 * httpserver.WORKERS)
    finally:
        for s in silent:
            s.close()
        api.stop()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == before


def test_each_request_is_observed_by_route():
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    from walrus_ha.common.metrics import http_observer, metrics_route
    registry = CollectorRegistry()
    api = httpserver.HttpApi("127.0.0.1:0", {"/x": lambda q: httpserver.Response(200, b"ok", "text/plain")},
                             observe=http_observer(registry, {"member": "a"}))
    api.start()
    try:
        assert get(api.port, "/x")[0] == 200 and get(api.port, "/x?y=1")[0] == 200
        assert get(api.port, "/nope")[0] == 404
    finally:
        api.stop()
    counts = {s.labels["route"]: s.value for fam in text_string_to_metric_families(metrics_route(registry)({}).body
                                                                                    .decode())
              for s in fam.samples if s.name == "walrus_http_request_seconds_count"}
    assert counts == {"/x": 2, httpserver.OTHER: 1}
