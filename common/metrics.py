"""Prometheus plumbing shared by the agent and the orchestrator.

The one rule: every process builds its own ``CollectorRegistry`` (never
``prometheus_client``'s global one), so tests and several agents in one
process do not collide, and what ``/metrics`` shows is collected at scrape
time from state the process already holds (custom collectors), never by a
call to an engine, etcd or a peer.

* ``metrics_route(registry)``: the ``/metrics`` handler for
  ``common.httpserver`` (text exposition format, ``CONTENT_TYPE``: 0.0.4).
* ``RpcErrors``: a gRPC server interceptor (sync servers) that counts the
  calls that ended with a status other than OK in
  ``walrus_rpc_errors_total{method, code}`` (plus the constant labels given,
  e.g. cluster and member). Client cancellations are not errors.
* ``Gauges``: a small builder of labelled gauge families for collectors.
* ``http_observer``: ``walrus_http_request_seconds{route}`` for ``HttpApi``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from walrus_ha.common.httpserver import Handler, Observer, Response

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4     # what Prometheus 2 and 3 both read


def metrics_route(registry: CollectorRegistry) -> Handler:
    """``GET /metrics``: everything ``registry`` collects, as Prometheus text.
    Counters carry no ``_created`` series (process-wide prometheus_client
    setting, made here: they double a scrape's size and nobody graphs them)."""
    disable_created_metrics()

    def handle(query: dict[str, list[str]]) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE)
    return handle


class Gauges:
    """Labelled gauge families with a fixed set of leading labels (e.g.
    ``cluster``, ``member``): ``add(name, help, value, **more_labels)`` then
    ``families()``. A family is created on first use; ``None`` values are
    skipped (unknown is absent, not zero)."""

    def __init__(self, prefix: str, labels: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.labels = dict(labels)
        self._families: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, help_text: str, value: float | int | bool | None, **more: str) -> None:
        if value is None:
            return
        full = self.prefix + name
        fam = self._families.get(full)
        names = [*self.labels, *more]
        if fam is None:
            fam = self._families[full] = GaugeMetricFamily(full, help_text, labels=names)
        fam.add_metric([*self.labels.values(), *(str(v) for v in more.values())], float(value))

    def enum(self, name: str, help_text: str, label: str, current: str, values: Iterable[str]) -> None:
        """One series per possible value, 1 for ``current`` and 0 for the rest
        (a state set: ``max by (label)`` and ``== 1`` both work in PromQL)."""
        for v in values:
            self.add(name, help_text, v == current, **{label: v})

    def families(self) -> list[Metric]:
        return list(self._families.values())


class CallbackCollector:
    """A registry collector whose families come from ``collect_fn`` at each
    scrape (``describe`` is empty, so registering never calls it)."""

    def __init__(self, collect_fn: Callable[[], Sequence[Metric]]) -> None:
        self._collect = collect_fn

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


HTTP_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def http_observer(registry: CollectorRegistry, labels: Mapping[str, str]) -> Observer:
    """``HttpApi(observe=...)``: ``walrus_http_request_seconds{route}``, each
    request's time inside the server (request line parsed -> answer written;
    not the wait for a thread or the GIL before it)."""
    hist = Histogram("walrus_http_request_seconds", "Time an HTTP request spent in the server, by route",
                     [*labels, "route"], buckets=HTTP_BUCKETS, registry=registry)
    values = list(labels.values())

    def observe(route: str, seconds: float) -> None:
        hist.labels(*values, route).observe(seconds)
    return observe


class RpcErrors(grpc.ServerInterceptor):
    """Counts non-OK endings per method and status code (see the module doc).
    Put it first in ``interceptors`` so refusals by later interceptors (e.g.
    ``grpc_guard``'s INVALID_ARGUMENT) are counted too."""

    def __init__(self, registry: CollectorRegistry, labels: Mapping[str, str] | None = None) -> None:
        self._labels = dict(labels or {})
        self.counter = Counter("walrus_rpc_errors", "gRPC calls this server ended with a status other than OK",
                               [*self._labels, "method", "code"], registry=registry)

    def count(self, method: str, code: grpc.StatusCode | None) -> None:
        if code is None or code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            return
        self.counter.labels(*self._labels.values(), method, code.name).inc()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind in _KINDS:
            fn = getattr(handler, kind, None)
            if fn is not None:
                factory = getattr(grpc, f"{kind}_rpc_method_handler")
                return factory(self._wrap(fn, method), request_deserializer=handler.request_deserializer,
                               response_serializer=handler.response_serializer)
        return handler

    def _wrap(self, fn: Callable, method: str) -> Callable:
        if inspect.isgeneratorfunction(fn):
            def stream(request: Any, context: Any) -> Iterator[Any]:
                try:
                    yield from fn(request, context)
                except Exception:
                    self.count(method, context.code() or grpc.StatusCode.UNKNOWN)
                    raise
                self.count(method, context.code())
            return stream

        def unary(request: Any, context: Any) -> Any:
            try:
                reply = fn(request, context)
            except Exception:
                self.count(method, context.code() or grpc.StatusCode.UNKNOWN)
                raise
            self.count(method, context.code())
            return reply
        return unary


__all__ = ["CONTENT_TYPE", "HTTP_BUCKETS", "http_observer", "metrics_route", "Gauges", "CallbackCollector", "RpcErrors"]
