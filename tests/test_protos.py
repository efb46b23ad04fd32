import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["common", "store", "walstream", "node_agent", "cluster"])
def test_stubs_import(name):
    importlib.import_module(f"protos.{name}_pb2")
    importlib.import_module(f"protos.{name}_pb2_grpc")


def test_stubs_are_current():
    pytest.importorskip("grpc_tools")
    out = subprocess.run([sys.executable, "-m", "walrus_ha.protos.generate", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
