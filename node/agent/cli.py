"""``walrus node --config node.yaml [--log-level LEVEL]``: run one node agent
until SIGTERM / SIGINT, then stop it cleanly (fence, release the leader key,
stop the engine, revoke the lease). A bad config file is a ConfigError
(one line on stderr naming the file and the key, exit code 1).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from walrus_ha.common import log as wlog
from walrus_ha.common import pidfile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="node config file (YAML)")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="override the config's log_level")


def run(args: argparse.Namespace) -> int:
    from walrus_ha.common.grpchealth import HealthBoard
    from walrus_ha.common.metrics import http_observer, metrics_route
    from walrus_ha.node.agent.agent import NodeAgent
    from walrus_ha.node.agent.rolehealth import RoleHealth
    from walrus_ha.node.agent.service import AgentServer
    from walrus_ha.node.config import load_node_config

    config = load_node_config(args.config, env=os.environ)
    wlog.setup(args.log_level or config.log_level, name=config.name, fmt=config.log.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = NodeAgent(config, env=os.environ)
    agent.reload_source = lambda: load_node_config(args.config, env=os.environ)   # walrus ctl reload
    board = HealthBoard()
    _serve_health_on_data_port(agent, board)
    registry, rpc_errors = _metrics(agent, config)
    server = AgentServer(agent, config.agent_listen, board=board, interceptors=[rpc_errors])
    server.start()
    api = _http_api(agent, config, http_observer(registry, {"cluster": config.cluster, "member": config.name}))
    api.register("/metrics", metrics_route(registry))
    api.start()
    roles = RoleHealth(board, agent.probe_facts)
    # Tools (walrus cluster status/stop/down) find this agent by its pid file,
    # however it was started; written once the port is ours.
    mark = (config.data_dir, config.name, args.config, config.agent_address)
    pidfile.write(*mark)
    try:
        agent.start()
        server.set_serving(True)
        roles.start()
        print(f"walrus node {config.name}: agent on {config.agent_address}, "
              f"data on {config.data_address}, HTTP API on {config.api_url}, cluster {config.cluster}", flush=True)
        while not stop.wait(0.5):
            # A re-clone replaces the data dir, file included; it runs under
            # agent.lock, so never write while someone holds it.
            if agent.lock.acquire(blocking=False):
                try:
                    pidfile.keep(*mark)
                finally:
                    agent.lock.release()
    finally:
        roles.stop()
        server.set_serving(False)
        agent.stop()
        api.stop()
        server.stop()
        pidfile.remove_if_mine(config.data_dir)
    print(f"walrus node {config.name}: stopped", file=sys.stderr, flush=True)
    return 0


def _http_api(agent, config, observe=None):
    """The HTTP API (``node.agent.httpapi``) over the agent's probe facts."""
    from walrus_ha.node.agent import httpapi

    def status() -> dict:
        return httpapi.member_document(agent.last_status(), agent.probe_facts(), config.api_url)

    return httpapi.HttpApi(config.api_listen, httpapi.probe_routes(agent.probe_facts, status), observe=observe)


def _metrics(agent, config):
    """The process's own registry (``node.agent.metrics``) and the gRPC
    interceptor counting RPC errors into it."""
    from walrus_ha.common.metrics import RpcErrors
    from walrus_ha.node.agent.metrics import agent_registry

    registry = agent_registry(agent, config.cluster, config.name)
    return registry, RpcErrors(registry, {"cluster": config.cluster, "member": config.name})


def _serve_health_on_data_port(agent, board) -> None:
    """Health + reflection on the embedded engine's data port too (its gRPC
    server is the engine's; PostgreSQL's data port speaks no gRPC)."""
    extra = getattr(agent.engine, "extra_servicers", None)
    if extra is None:
        return
    from walrus_ha.common.grpchealth import service_names
    from walrus_ha.protos import store_pb2, walstream_pb2

    board.set_all(service_names(store_pb2, walstream_pb2), True)
    extra.append(lambda server: board.attach_aio(server, service_names(store_pb2, walstream_pb2)))
