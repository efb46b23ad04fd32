"""``walrus engine``: run one embedded engine server on its own.

    walrus engine --name N --data-dir D --listen H:P [--upstream NAME@H:P]
        [--synchronous-commit LEVEL] [--sync 'FIRST 1 (b)']
        [--segment-size BYTES] [--max-slot-wal-keep-size BYTES]

An empty data dir is bootstrapped as a primary (no ``--upstream``) or cloned
from the upstream (``--upstream``); an initialized one starts in its recorded
role and, with ``--upstream``, follows it. Prints one ready line on stdout
(``walrus-engine ready name=... role=... listen=...``) and serves until
SIGTERM/SIGINT. Besides ``Store`` and ``WalStream`` it serves a minimal
``NodeAgent`` (GetStatus, Promote, Demote, Follow, Rejoin) on the same port,
so tests, benchmarks and operators can steer a standalone engine.
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading

from walrus_ha.common import log as wlog
from walrus_ha.common import rpcerrors
from walrus_ha.common.config import from_dict, parse_address
from walrus_ha.common.errors import ConfigError, EngineError, StaleTerm
from walrus_ha.common.lsn import format_lsn
from walrus_ha.node.config import EmbeddedConfig
from walrus_ha.node.engine.base import Role, SyncSpec, Upstream
from walrus_ha.node.engine.convert import engine_status_to_pb
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="node name (also its replication slot name)")
    parser.add_argument("--data-dir", required=True, help="data directory")
    parser.add_argument("--listen", required=True, help="host:port for Store/WalStream (port 0 = pick one)")
    parser.add_argument("--upstream", default="", help="NAME@HOST:PORT of the primary to stream from")
    parser.add_argument("--synchronous-commit", default=None,
                        help="default commit level: off, local, remote_write, on, remote_apply")
    parser.add_argument("--sync", default=None, help="synchronous standby set, e.g. 'FIRST 1 (b)'")
    parser.add_argument("--segment-size", type=int, default=None, help="WAL segment size in bytes")
    parser.add_argument("--max-slot-wal-keep-size", type=int, default=None,
                        help="bytes of WAL a slot may retain (-1 = unlimited)")
    parser.add_argument("--checkpoint-interval", type=float, default=None, help="seconds between checkpoints")
    parser.add_argument("--term", type=int, default=0, help="term to stamp a bootstrapped primary with")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def parse_upstream(text: str) -> Upstream:
    """``NAME@HOST:PORT`` -> Upstream; ConfigError with a sentence otherwise."""
    name, sep, address = text.partition("@")
    if not sep or not name or not address:
        raise ConfigError(f"--upstream must look like NAME@HOST:PORT, got {text!r}")
    try:
        parse_address(address)
    except ValueError as exc:
        raise ConfigError(f"--upstream: {exc}") from None
    return Upstream(name, address)


def config_from_args(args: argparse.Namespace) -> EmbeddedConfig:
    """The engine config the flags describe; ConfigError names the flag."""
    data = {}
    for flag, key in (("synchronous_commit", "synchronous_commit"), ("sync", "synchronous_standby_names"),
                      ("segment_size", "segment_size"), ("max_slot_wal_keep_size", "max_slot_wal_keep_size"),
                      ("checkpoint_interval", "checkpoint_interval_s")):
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    if "synchronous_standby_names" in data:
        try:
            SyncSpec.parse(data["synchronous_standby_names"])
        except ValueError as exc:
            raise ConfigError(f"--sync: {exc}") from None
    return from_dict(EmbeddedConfig, data, source="walrus engine flags")


class EngineControlServicer(node_agent_pb2_grpc.NodeAgentServicer):
    """A minimal NodeAgent over a bare engine (no etcd, no leader key)."""

    def __init__(self, engine):
        self._engine = engine

    def _status(self) -> node_agent_pb2.NodeStatus:
        e = self._engine
        return node_agent_pb2.NodeStatus(name=e.name, data_address=e.data_address,
                                         engine=engine_status_to_pb(e.status()), state="standalone-engine")

    def _act(self, context, fn) -> node_agent_pb2.ActionReply:
        try:
            detail = fn()
        except StaleTerm as exc:
            rpcerrors.abort(context, exc, f"stale term: {exc}")
        except EngineError as exc:      # code and reason: the one table (common.rpcerrors)
            rpcerrors.abort(context, exc)
        return node_agent_pb2.ActionReply(changed=True, detail=str(detail or ""), status=self._status())

    def GetStatus(self, request, context):
        return self._status()

    def Promote(self, request, context):
        return self._act(context, lambda: self._engine.promote(request.term) and "promoted")

    def Demote(self, request, context):
        return self._act(context, lambda: f"demoted; final flush LSN {format_lsn(self._engine.demote(request.term))}")

    def Follow(self, request, context):
        up = Upstream(request.leader_name, request.leader_data_address, request.leader_timeline)
        return self._act(context, lambda: self._engine.follow(up, request.term))

    def Rejoin(self, request, context):
        up = Upstream(request.leader_name, request.leader_data_address)
        return self._act(context, lambda: self._engine.rejoin(up, request.term, request.allow_reclone).value)


def run(args: argparse.Namespace) -> int:
    from walrus_ha.node.engine.embedded.engine import EmbeddedEngine

    wlog.setup(args.log_level, args.name)
    try:
        host, _, port = args.listen.rpartition(":")
        if port != "0":                 # port 0 = let the kernel pick a free one
            parse_address(args.listen)
        elif not host:
            raise ValueError(f"not a host:port address: {args.listen!r}")
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    if not args.name or "/" in args.name or "@" in args.name:
        raise ConfigError(f"--name must be a non-empty name without '/' or '@', got {args.name!r}")
    upstream = parse_upstream(args.upstream) if args.upstream else None
    config = config_from_args(args)
    engine = EmbeddedEngine(args.name, args.data_dir, args.listen, config)
    engine.extra_servicers.append(
        lambda server: node_agent_pb2_grpc.add_NodeAgentServicer_to_server(EngineControlServicer(engine), server))
    if not engine.is_initialized():
        if upstream is None:
            engine.bootstrap(term=args.term)
        else:
            engine.clone(upstream)
    engine.start()
    if upstream is not None and engine.status().role is Role.STANDBY:
        engine.follow(upstream, engine.term)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    st = engine.status()
    print(f"walrus-engine ready name={engine.name} role={st.role.value} listen={engine.data_address} "
          f"timeline={st.timeline} term={st.term} lsn={format_lsn(st.flush_lsn)}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        engine.stop()
    logging.getLogger(__name__).info("stopped")
    return 0
