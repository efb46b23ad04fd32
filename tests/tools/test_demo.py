"""``walrus demo`` runs to completion and leaves no process behind."""
import json
import subprocess
import sys

import pytest

from walrus_ha.common import procs
from walrus_ha.tools.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration


def test_demo_runs_to_completion(tmp_path):
    d = tmp_path / "demo"
    try:
        result = subprocess.run([sys.executable, "-m", "walrus_ha", "demo", "--dir", str(d), "--watch-seconds", "2"],
                                capture_output=True, text=True, timeout=200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        out = result.stdout
        assert "SIGKILL" in out and "RTO" in out and "streams from" in out and " missing" in out
        info = json.loads((d / "cluster.json").read_text())
        assert not any(procs.is_ours(procs.ProcHandle.from_json(p["handle"])) for p in info["processes"].values())
    finally:
        if (d / "cluster.json").exists():
            LocalCluster.load(str(d)).stop_all(timeout_s=5.0)
