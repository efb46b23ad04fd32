"""Smoke tests of ``walrus bench transport`` (real processes, tiny run)."""
import json
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_bench_transport_writes_json_and_table(tmp_path):
    out = tmp_path / "transport.json"
    res = subprocess.run([sys.executable, "-m", "walrus_ha", "bench", "transport", "--rounds", "1",
                          "--duration", "0.5", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert [r["variant"] for r in data["results"]] == ["fsync", "ship-ahead", "no-fsync"]
    for r in data["results"]:
        assert r["round_trips_per_s"] > 0 and r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"]
        assert len(r["per_round"]) == 1 and len(r["p50_ms_range"]) == 2
    assert data["setup"]["rounds"] == 1 and "grpcio" in data["setup"] and "GRPC_EXPERIMENTS" in data["setup"]
    assert "round trips/s" in res.stdout and "ship-ahead" in res.stdout and "no-fsync" in res.stdout
    assert "bench: transport fsync round 1/1:" in res.stderr


def test_bench_transport_rejects_zero_rounds():
    res = subprocess.run([sys.executable, "-m", "walrus_ha", "bench", "transport", "--rounds", "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--rounds must be >= 1" in res.stderr
