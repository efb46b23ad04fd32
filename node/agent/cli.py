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
    from walrus_ha.node.agent.agent import NodeAgent
    from walrus_ha.node.agent.service import AgentServer
    from walrus_ha.node.config import load_node_config

    config = load_node_config(args.config, env=os.environ)
    wlog.setup(args.log_level or config.log_level, name=config.name, fmt=config.log.format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = NodeAgent(config)
    server = AgentServer(agent, config.agent_listen)
    server.start()
    # Tools (walrus cluster status/stop/down) find this agent by its pid file,
    # however it was started; written once the port is ours.
    mark = (config.data_dir, config.name, args.config, config.agent_address)
    pidfile.write(*mark)
    try:
        agent.start()
        server.set_serving(True)
        print(f"walrus node {config.name}: agent on {config.agent_address}, "
              f"data on {config.data_address}, cluster {config.cluster}", flush=True)
        while not stop.wait(0.5):
            # A re-clone replaces the data dir, file included; it runs under
            # agent.lock, so never write while someone holds it.
            if agent.lock.acquire(blocking=False):
                try:
                    pidfile.keep(*mark)
                finally:
                    agent.lock.release()
    finally:
        server.set_serving(False)
        agent.stop()
        server.stop()
        pidfile.remove_if_mine(config.data_dir)
    print(f"walrus node {config.name}: stopped", file=sys.stderr, flush=True)
    return 0
