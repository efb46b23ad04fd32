"""Children forked by the agent (postmaster, pg_controldata, pg_waldump,
pg_rewind) must not die before exec because gRPC threads are busy: walrus
turns gRPC core's fork handlers off before grpc is imported (``walrus/__init__.py``).
See ``fork_crash_repro.py`` for the measurement."""
from __future__ import annotations

import os
import pathlib
import pwd
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]
REPRO = pathlib.Path(__file__).with_name("fork_crash_repro.py")


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["walrus_ha.node.agent.service", "walrus_ha.node.engine.postgres.process",
                                    "walrus_ha.tools.cli", "walrus_ha.orchestrator.controller",
                                    "walrus_ha.protos.cluster_pb2_grpc"])
def test_fork_handlers_off_before_grpc_is_imported(module):
    code = (f"import os; import {module}; "
            "print(os.environ.get('GRPC_ENABLE_FORK_SUPPORT'))")
    assert _python(code) == "0"


def test_an_explicit_setting_wins():
    assert _python("import walrus_ha, os; print(os.environ['GRPC_ENABLE_FORK_SUPPORT'])",
                   GRPC_ENABLE_FORK_SUPPORT="1") == "1"


def test_children_of_a_busy_grpc_process_as_postgres_are_not_killed():
    """The agent's case: fork (not vfork, because of the uid switch) while
    gRPC threads serve and call. Without the fix about 1 child in 7 died here."""
    if os.geteuid() != 0:
        pytest.skip("switches to the postgres OS user: needs root")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres OS user")
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    out = subprocess.run([sys.executable, str(REPRO), "--mode", "user_preexec", "-n", "400", "--walrus"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    m = re.search(r"children=(\d+) killed_by_signal=(\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    assert (int(m.group(1)), int(m.group(2))) == (400, 0), out.stdout
