"""EtcdServer: a real etcd on free loopback ports, stopped by PID."""
from __future__ import annotations

import os

import pytest

from walrus_ha.common.dcs import Dcs
from walrus_ha.tools.etcd_server import EtcdServer, EtcdServerError, find_etcd

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as dead.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_start_serves_on_loopback_and_stop_ends_the_process(tmp_path):
    find_etcd() if os.path.exists("/usr/bin/etcd") else pytest.skip("no etcd")
    server = EtcdServer(tmp_path / "etcd")
    try:
        server.start()
        assert server.endpoint.startswith("127.0.0.1:")
        pid = server.pid
        assert _alive(pid)
        with Dcs([server.endpoint], "c") as dcs:
            dcs.put(dcs.keys.config, {"a": 1})
    finally:
        server.stop()
    assert not _alive(pid)
    server.stop()  # idempotent


def test_restart_keeps_ports_and_data(etcd):
    with Dcs([etcd.endpoint], "c") as dcs:
        dcs.put(dcs.keys.config, {"a": 1})
        endpoint = etcd.endpoint
        etcd.stop()
        etcd.start()
        assert etcd.endpoint == endpoint
        assert dcs.get(dcs.keys.config, deadline_s=10)[0] == {"a": 1}


def test_one_second_leases_are_granted(etcd):
    with Dcs([etcd.endpoint], "c") as dcs:
        lease = dcs.grant_lease(1)
        assert 0 < dcs.refresh_lease(lease) <= 1


def test_two_servers_get_distinct_ports(tmp_path):
    a, b = EtcdServer(tmp_path / "a"), EtcdServer(tmp_path / "b")
    assert len({a.client_port, a.peer_port, b.client_port, b.peer_port}) == 4


def test_missing_binary_says_what_to_install(tmp_path):
    with pytest.raises(EtcdServerError, match="install etcd-server"):
        EtcdServer(tmp_path / "etcd", binary=str(tmp_path / "no-such-etcd"))


def test_start_failure_is_reported(tmp_path, etcd):
    # Same client port as a running server: the second one cannot bind it.
    clash = EtcdServer(tmp_path / "clash", client_port=etcd.client_port)
    with pytest.raises(EtcdServerError, match="already in use"):
        clash.start(timeout=15)
    clash.stop()
