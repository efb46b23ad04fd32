"""Smoke test of ``walrus bench engine`` (real processes, tiny run)."""
import json
import subprocess
import sys

import pytest


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["unary", "stream"])
def test_bench_engine_writes_json(tmp_path, protocol):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "walrus_ha", "bench", "engine", "--rounds", "1", "--duration", "0.5",
                          "--levels", "local,on", "--clients", "2", "--json", str(out), "--protocol", protocol,
                          "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert [(r["level"], r["clients"]) for r in data["results"]] == [("local", 2), ("on", 2)]
    for r in data["results"]:
        assert r["commits_per_s"] > 0 and r["p50_ms"] > 0 and r["errors"] == 0 and r["rounds"] == 1
        assert {"p99_ms", "replay_lag_bytes", "replay_lag_s"} <= set(r) and r["protocol"] == protocol
    assert data["setup"]["protocol"] == protocol
    assert "commits/s" in res.stdout and protocol in res.stdout


def test_bench_rejects_unknown_level():
    res = subprocess.run([sys.executable, "-m", "walrus_ha", "bench", "engine", "--levels", "fast"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unknown commit level" in res.stderr
