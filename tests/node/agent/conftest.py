"""Fixtures of the node agent's tests: ``agents`` (see agent_procs.py)."""
from __future__ import annotations

import sys

import pytest

from agent_procs import Agents


@pytest.fixture
def agents(tmp_path, etcd, cluster_name, request):
    group = Agents(tmp_path, etcd.endpoint, cluster_name)
    try:
        yield group
    finally:
        failed = getattr(request.node, "rep_call", None)
        group.close()
        if failed is not None and failed.failed:
            for a in group.all.values():
                sys.stderr.write(f"\n----- log of {a.name} -----\n{a.log_text()[-6000:]}\n")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
