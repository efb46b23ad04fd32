"""``walrus orchestrator --config orch.yaml [--log-level LEVEL]``: run one
orchestrator (active or hot spare) and its Cluster gRPC service until
SIGTERM / SIGINT; then stop acting and revoke the election lease so that a
spare takes over at once. A bad config file is a ConfigError (one line on
stderr naming the file and the key, exit code 1).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from walrus_ha.common import log as wlog

HEALTH_POLL_S = 0.1   # how often walrus.orchestrator.active follows the election


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="orchestrator config file (YAML)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="override the config's log_level")


def serve(config, stop: threading.Event) -> int:
    """Run an orchestrator for ``config`` until ``stop`` is set."""
    import walrus_ha
    from walrus_ha.common import grpchealth, grpcutil, registry
    from walrus_ha.common.dcs import Dcs
    from walrus_ha.common.errors import ConfigError
    from walrus_ha.common.httpserver import ApiListenError
    from walrus_ha.orchestrator.controller import Controller
    from walrus_ha.orchestrator.metrics import OrchestratorMetrics
    from walrus_ha.orchestrator.service import ClusterService, LeaderWatch
    from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc

    dcs = Dcs(list(config.etcd.endpoints), config.cluster, timeout_s=config.etcd.timeout_s)
    # orchestrators/<id>: where `walrus ctl --etcd` finds this Cluster service
    announce = registry.announcer(dcs, config.id, config.advertise or config.listen, walrus_ha.__version__,
                                  deadline_s=config.retry_timeout)
    metrics = OrchestratorMetrics(config.cluster, config.id)
    controller = Controller(config, dcs, announce=announce, on_outcome=metrics.on_outcome,
                            seed_config=True, env=os.environ)
    metrics.attach(controller)
    leaders = LeaderWatch(dcs)
    service = ClusterService(dcs, controller, leaders, rpc_timeout=config.rpc_timeout)
    server = grpcutil.server(max_workers=32, interceptors=[metrics.interceptor])
    cluster_pb2_grpc.add_ClusterServicer_to_server(service, server)
    # Health: "" and walrus.v1.Cluster while up; walrus.orchestrator.active
    # only while this one holds the election (checked each turn below).
    board = grpchealth.HealthBoard()
    board.set(grpchealth.ORCHESTRATOR_ACTIVE, False)
    board.attach(server, grpchealth.service_names(cluster_pb2))
    try:
        bound = server.add_insecure_port(config.listen)
    except RuntimeError:
        bound = 0
    if not bound:
        dcs.close()
        raise ConfigError(f"listen: cannot bind {config.listen} (address in use?)")
    try:
        api = _metrics_api(config, metrics, dcs)
    except ApiListenError as exc:
        server.stop(0)
        dcs.close()
        raise ConfigError(str(exc)) from None
    server.start()
    leaders.start()
    controller.start()
    print(f"walrus orchestrator {config.id}: Cluster service on {config.listen}, "
          f"cluster {config.cluster}" + (f", metrics on port {api.port}" if api else ""),
          flush=True)
    board.set_all(["", *grpchealth.service_names(cluster_pb2)], True)
    try:
        while not stop.wait(HEALTH_POLL_S):
            board.set(grpchealth.ORCHESTRATOR_ACTIVE, controller.election.is_active())
    finally:
        board.set_all(["", grpchealth.ORCHESTRATOR_ACTIVE, *grpchealth.service_names(cluster_pb2)], False)
        controller.stop()      # resigns: revokes the election lease
        leaders.stop()
        server.stop(grace=0.5).wait(2)
        if api is not None:
            api.stop()
        service.close()
        dcs.close()
    print(f"walrus orchestrator {config.id}: stopped", file=sys.stderr, flush=True)
    return 0


def _metrics_api(config, metrics, dcs):
    """Serve ``/metrics`` on ``metrics_listen`` (None when off), and read the
    last failover from etcd once in the background. Raises ApiListenError
    (naming the key) when the port cannot be bound."""
    if not config.metrics_listen:
        return None
    from walrus_ha.common.httpserver import HttpApi
    from walrus_ha.common.metrics import http_observer, metrics_route

    observe = http_observer(metrics.registry, {"cluster": config.cluster, "orchestrator": config.id})
    api = HttpApi(config.metrics_listen, {"/metrics": metrics_route(metrics.registry)}, what="metrics_listen",
                  observe=observe)
    api.start()
    threading.Thread(target=metrics.seed_from_etcd, args=(dcs, config.retry_timeout), name="metrics-seed",
                     daemon=True).start()
    return api


def run(args: argparse.Namespace) -> int:
    from walrus_ha.orchestrator.config import load_orchestrator_config

    config = load_orchestrator_config(args.config, env=os.environ)
    wlog.setup(args.log_level or config.log_level, name=config.id, fmt=config.log.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return serve(config, stop)
