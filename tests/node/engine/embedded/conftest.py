"""Fixtures of the embedded engine tests: ``cluster``, real engine processes
(``embedded_engine_procs.Cluster``), every one stopped by PID after the test."""
import pytest

from embedded_engine_procs import Cluster


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()
