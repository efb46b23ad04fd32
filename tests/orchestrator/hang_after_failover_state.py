"""Fault injection for tests: an orchestrator that hangs right after it
saved the in-flight failover state to etcd, before it acts on it.

    python tests/orchestrator/hang_after_failover_state.py MARKER orchestrator --config F

Runs the real ``walrus orchestrator`` with one patch: once a
SAVE_FAILOVER_STATE action has succeeded, it writes its pid to MARKER and
sleeps until the test kills it. Lives here, not in the runtime package.
"""
import os
import pathlib
import sys
import time

from walrus_ha.orchestrator import controller
from walrus_ha.orchestrator.core.model import ActionKind
from walrus_ha.tools.cli import main

_execute = controller.Controller._execute


def _execute_then_hang(self, action, obs, decision):
    outcome = _execute(self, action, obs, decision)
    if action.kind is ActionKind.SAVE_FAILOVER_STATE and outcome.ok:
        pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
        while True:  # wait to be killed by the test
            time.sleep(1)
    return outcome


controller.Controller._execute = _execute_then_hang

if __name__ == "__main__":
    sys.exit(main(sys.argv[2:]))
