"""The HTTP API server (node/agent/httpapi.py) on a real loopback socket,
answering from injected facts; and the role names of the gRPC health."""
from __future__ import annotations

import http.client
import json
import socket
from dataclasses import replace

import pytest

from test_agent_probes import PRIMARY, REPLICA
from walrus_ha.common import grpchealth
from walrus_ha.node.agent import httpapi, rolehealth


@pytest.fixture
def api():
    state = {"facts": PRIMARY}
    server = httpapi.HttpApi("127.0.0.1:0", httpapi.probe_routes(
        lambda: state["facts"], lambda: httpapi.member_document(None, state["facts"], "http://x")))
    server.start()
    yield server, state
    server.stop()


def request(port, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type")
    finally:
        conn.close()


def test_codes_follow_the_facts(api):
    server, state = api
    assert request(server.port, "GET", "/primary")[0] == 200
    assert request(server.port, "GET", "/replica")[0] == 503
    state["facts"] = REPLICA
    assert request(server.port, "GET", "/primary")[0] == 503
    assert request(server.port, "GET", "/replica?lag=10MB")[0] == 200
    assert request(server.port, "GET", "/replica?lag=1")[0] == 503
    assert request(server.port, "GET", "/replica?lag=x")[0] == 400
    assert request(server.port, "GET", "/nope")[0] == 404


def test_head_and_options_answer_like_get(api):
    server, state = api
    for facts, code in ((PRIMARY, 200), (REPLICA, 503)):
        state["facts"] = facts
        for method in ("GET", "HEAD", "OPTIONS"):
            status, body, _ = request(server.port, method, "/primary")
            assert status == code, method
            assert (body == b"") == (method == "HEAD")


def test_body_is_the_json_status(api):
    server, _ = api
    status, body, ctype = request(server.port, "GET", "/status")
    doc = json.loads(body)
    assert (status, ctype) == (200, "application/json")
    assert doc["http"] == "http://x" and doc["primary"] is True and doc["replica"] is False


def test_register_adds_a_route(api):
    server, _ = api
    server.register("/metrics", lambda q: httpapi.Response(200, b"walrus_up 1\n", "text/plain"))
    assert request(server.port, "GET", "/metrics") == (200, b"walrus_up 1\n", "text/plain")


def test_a_broken_handler_is_a_500_and_the_server_goes_on(api):
    server, _ = api
    server.register("/boom", lambda q: 1 / 0)
    assert request(server.port, "GET", "/boom")[0] == 500
    assert request(server.port, "GET", "/primary")[0] == 200


def test_port_in_use_is_an_error_after_the_deadline():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(httpapi.ApiListenError, match="api_listen"):
            httpapi.HttpApi(f"127.0.0.1:{port}", bind_deadline_s=0.3).start()


def test_role_flags():
    assert rolehealth.role_flags(PRIMARY) == {grpchealth.PRIMARY: True, grpchealth.REPLICA: False}
    assert rolehealth.role_flags(REPLICA) == {grpchealth.PRIMARY: False, grpchealth.REPLICA: True}
    assert rolehealth.role_flags(replace(PRIMARY, fenced=True)) == {grpchealth.PRIMARY: False,
                                                                     grpchealth.REPLICA: False}
