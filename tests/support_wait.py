"""Polling for the integration tests: one ``wait_for`` for every helper.

Conditions over real processes are polled under a generous deadline (never a
fixed sleep, never a timed assertion). Importable from any test module: the
rootdir conftest puts ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import time

import grpc


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition",
             retry_on: tuple[type[BaseException], ...] = (grpc.RpcError,)):
    """Poll ``predicate`` until it returns a truthy value and return that.

    Exceptions in ``retry_on`` count as "not yet"; the last one is named in
    the AssertionError raised after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except retry_on as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))
