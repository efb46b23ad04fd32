"""Shared fixtures (rootdir conftest).

* ``etcd``: a real etcd (``tools.etcd_server.EtcdServer``) for one test, on
  free 127.0.0.1 ports with its data in ``tmp_path``; stopped by PID after
  the test. Use ``etcd.endpoint`` (``"127.0.0.1:<port>"``); ``etcd.stop()``
  / ``etcd.start()`` / ``etcd.kill()`` / ``etcd.pause()`` to disturb it.
* ``etcd_session``: one etcd shared by the whole session (cheaper); do not
  stop it. Isolate tests with ``cluster_name`` (a unique cluster per test).
* ``cluster_name``: a unique cluster name for the current test.

Tests that need etcd are skipped (not failed) only when the binary is
missing; CI installs ``etcd-server``.
"""
from __future__ import annotations

import uuid

import pytest

from walrus_ha.tools.etcd_server import EtcdServer, EtcdServerError, find_etcd


def _require_etcd() -> None:
    try:
        find_etcd()
    except EtcdServerError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def etcd(tmp_path):
    """A fresh etcd for this test; stopped (SIGTERM, then SIGKILL, by PID) afterwards."""
    _require_etcd()
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.fixture(scope="session")
def etcd_session(tmp_path_factory):
    """One etcd for the whole session; tests must not stop it."""
    _require_etcd()
    server = EtcdServer(tmp_path_factory.mktemp("etcd-session") / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.fixture
def cluster_name(request) -> str:
    """A cluster name unique to this test (isolates keys on a shared etcd)."""
    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
