"""Pure pieces of the PostgreSQL engine: config rendering, binary discovery,
permission checks (no server started; the lease fencer: test_pg_fencer.py)."""
from __future__ import annotations

import os
import pathlib

import pytest

from walrus_ha.common.errors import EngineError
from walrus_ha.node.engine.base import SyncMethod, SyncSpec
from walrus_ha.node.engine.postgres import conf
from walrus_ha.node.engine.postgres.binaries import REQUIRED, find_binaries, system_candidates
from walrus_ha.node.engine.postgres.process import OsUser, check_traversable


@pytest.mark.parametrize("spec, text", [
    (SyncSpec(), ""),
    (SyncSpec(SyncMethod.FIRST, 0, ("a",)), ""),
    (SyncSpec(SyncMethod.FIRST, 1, ("b-1",)), 'FIRST 1 ("b-1")'),
    (SyncSpec(SyncMethod.ANY, 2, ("a", "B", 'q"x')), 'ANY 2 ("a", "B", "q""x")'),
], ids=["async", "zero", "first", "any-quoted"])
def test_render_sync(spec, text):
    assert conf.render_sync(spec) == text


@pytest.mark.parametrize("member, slot", [("b-1", "b_1"), ("Node.A", "node_a"), ("x" * 70, "x" * 63)],
                         ids=["dash", "case-dot", "long"])
def test_slot_name(member, slot):
    assert conf.slot_name(member) == slot


def test_postgresql_conf_parameters_override_and_include_last():
    text = conf.render_postgresql_conf(conf.StaticConf("127.0.0.1", 5433, "/run/x", "1GB",
                                                       {"shared_buffers": "64MB", "log_line_prefix": "%m it's"}))
    lines = text.splitlines()
    assert "port = 5433" in lines and "listen_addresses = '127.0.0.1'" in lines
    assert "shared_buffers = 64MB" in lines and "shared_buffers = 32MB" not in lines
    assert "log_line_prefix = '%m it''s'" in lines
    assert "wal_log_hints = on" in lines and "max_slot_wal_keep_size = '1GB'" in lines
    assert lines[-1] == "include_if_exists = 'walrus.dynamic.conf'"


def test_dynamic_conf_and_conninfo_quoting():
    info = conf.conninfo(host="h", port=5, user="rep", application_name="it's me", sslmode="")
    assert info == "host=h port=5 user=rep application_name='it\\'s me'"
    text = conf.render_dynamic_conf(conf.DynamicConf(info, "b_1", 'FIRST 1 ("b")', True))
    assert "primary_conninfo = 'host=h port=5 user=rep application_name=''it\\\\''s me'''" in text
    assert "primary_slot_name = 'b_1'" in text
    assert "synchronous_standby_names = 'FIRST 1 (\"b\")'" in text
    assert "default_transaction_read_only = on" in text


def test_hba_is_loopback_only_plus_configured_rows():
    rows = [r for r in conf.render_hba("replicator").splitlines() if not r.startswith("#")]
    assert all(r.startswith("local") or "127.0.0.1/32" in r or "::1/128" in r for r in rows)
    extra = "host replication replicator 10.0.0.0/8 scram-sha-256"
    assert conf.render_hba("replicator", (extra, " ")).splitlines()[-1] == extra


def test_node_config_hba_loads():
    from walrus_ha.node.config import NodeConfig, from_dict
    nc = from_dict(NodeConfig, {"name": "n", "data_dir": "/d", "engine": "postgres",
                                "postgres": {"hba": ["host all all 10.0.0.0/8 scram-sha-256"]}})
    assert nc.postgres.hba == ("host all all 10.0.0.0/8 scram-sha-256",)


def test_configured_bin_dir_missing_programs_is_named(tmp_path):
    with pytest.raises(EngineError, match=r"lacks postgres, initdb"):
        find_binaries(str(tmp_path))


def test_no_server_found_names_where_it_looked(tmp_path):
    (tmp_path / "14" / "bin").mkdir(parents=True)
    with pytest.raises(EngineError, match=r"no PostgreSQL 15\+ server found.*14/bin \(lacks"):
        find_binaries(root=tmp_path)


def test_system_candidates_newest_first(tmp_path):
    for v in ("9", "15", "16", "x"):
        (tmp_path / v).mkdir()
    assert [p.parent.name for p in system_candidates(tmp_path)] == ["16", "15", "9"]


def test_system_binaries_found_when_installed():
    try:
        bins = find_binaries()
    except EngineError as exc:
        pytest.skip(str(exc))
    assert bins.major >= 15 and all(os.access(bins.path(p), os.X_OK) for p in REQUIRED)


def test_untraversable_parent_is_a_clear_error(tmp_path):
    nobody = OsUser("nobody", 65534, 65534, "/", True)
    d = pathlib.Path(tmp_path) / "closed" / "data"
    d.mkdir(parents=True)
    os.chmod(d.parent, 0o700)
    with pytest.raises(EngineError, match=r"cannot traverse .*closed"):
        check_traversable(d, nobody)
