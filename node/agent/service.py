"""The NodeAgent gRPC servicer (protos/node_agent.proto), the standard
``grpc.health.v1`` Health service (``common.grpchealth``: role-aware service
names) and server reflection, all on the agent's ``agent_listen``.

Thin: requests are converted and validated in ``convert``, the work is done
by ``actions`` on the ``NodeAgent``, and errors become a status code plus a
reason code by the one table of ``common.rpcerrors``: INVALID_ARGUMENT (bad
argument), FAILED_PRECONDITION (stale term, wrong role, refused in this
state, e.g. leader key held elsewhere), UNAVAILABLE (etcd unreachable, lease
lost, engine fenced), INTERNAL (any other engine failure, or a bug). Every
message is a sentence.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from walrus_ha.common import grpchealth, grpcutil, rpcerrors
from walrus_ha.common.errors import ConfigError, InvalidArgument, Refused, WalrusError
from walrus_ha.common.log import log_event
from walrus_ha.node.agent import actions, clusterconf, convert, operations
from walrus_ha.node.agent.agent import NodeAgent
from walrus_ha.protos import node_agent_pb2, node_agent_pb2_grpc

log = logging.getLogger(__name__)

MIN_WATCH_INTERVAL_S = 0.02
MAX_WATCH_INTERVAL_S = 3600.0
SERVICE_NAME = "walrus.v1.NodeAgent"


class NodeAgentServicer(node_agent_pb2_grpc.NodeAgentServicer):
    """GetStatus / WatchStatus / Promote / Demote / Follow / Rejoin / Restart / Reinit / Reload.

    ``WatchStatus`` pushes the status whenever it changes, at most every
    ``min_interval_s`` (floored at 20 ms), and at least once a second.
    """

    def __init__(self, agent: NodeAgent):
        self.agent = agent

    def GetStatus(self, request, context):
        return convert.status_to_pb(self.agent.status())

    def WatchStatus(self, request, context):
        if not 0 <= request.min_interval_s <= MAX_WATCH_INTERVAL_S:    # also refuses NaN
            rpcerrors.abort(context, InvalidArgument(
                f"min_interval_s must be between 0 and {MAX_WATCH_INTERVAL_S:g} seconds, "
                f"not {request.min_interval_s!r}"))
        interval = max(MIN_WATCH_INTERVAL_S, request.min_interval_s)
        ended = threading.Event()
        context.add_callback(ended.set)
        version = -1
        while not ended.is_set() and not self.agent.stopping:
            version, status = self.agent.wait_status(version, timeout=1.0)
            yield convert.status_to_pb(status)
            ended.wait(interval)     # rate limit; wakes at once if the client leaves

    def Promote(self, request, context):
        return self._act(context, "promote", lambda: actions.promote(self.agent, convert.promote_from_pb(request)))

    def Demote(self, request, context):
        return self._act(context, "demote", lambda: actions.demote(self.agent, convert.demote_from_pb(request)))

    def Follow(self, request, context):
        return self._act(context, "follow", lambda: actions.follow(self.agent, convert.follow_from_pb(request)))

    def Rejoin(self, request, context):
        return self._act(context, "rejoin", lambda: actions.rejoin(self.agent, convert.rejoin_from_pb(request)))

    def Restart(self, request, context):
        return self._act(context, "restart",
                         lambda: operations.restart(self.agent, convert.restart_from_pb(request)))

    def Reinit(self, request, context):
        return self._act(context, "reinit", lambda: operations.reinit(self.agent, convert._reason(request.reason)))
    def Reload(self, request, context):
        """Re-read the node's file (``clusterconf.reload``); a bad file is
        FAILED_PRECONDITION naming the file and key, and changes nothing."""
        if self.agent.reload_source is None:
            rpcerrors.abort(context, Refused("reload: this agent was not started from a config file"))
        try:
            r = clusterconf.reload(self.agent, self.agent.reload_source)
        except ConfigError as exc:
            log_event(log, "rpc.refused", logging.WARNING, rpc="reload", error=exc)
            rpcerrors.abort(context, Refused(f"reload: {exc}"))
        return node_agent_pb2.ReloadReply(changed=r.changed, applied=list(r.applied),
                                          pending_restart=list(r.pending_restart), detail=r.detail,
                                          config_revision=self.agent.config_follower.revision)

    def _act(self, context, what: str, fn: Callable[[], tuple[bool, str]]):
        try:
            changed, detail = fn()
        except convert.BadRequest as exc:
            rpcerrors.abort(context, exc, f"{what}: {exc}")
        except WalrusError as exc:
            code, reason = rpcerrors.status_for(exc)
            log_event(log, "rpc.refused", logging.WARNING, rpc=what, code=code.name, reason=reason.name, error=exc)
            rpcerrors.abort(context, exc, f"{what}: {exc}")
        except Exception as exc:       # a bug or an unmapped OS error: still one clear sentence
            log.exception("%s failed unexpectedly", what)
            rpcerrors.abort(context, exc, f"{what}: unexpected {type(exc).__name__}: {exc}")
        log_event(log, "rpc.done", rpc=what, changed=changed, detail=detail)
        return convert.reply_to_pb(changed, detail, self.agent.status())


class ListenError(WalrusError):
    """The agent's gRPC port could not be bound."""


class AgentServer:
    """The agent's gRPC server: NodeAgent + Health + reflection on ``listen``.
    ``board`` holds the health statuses (shared with the data port's server
    and ``rolehealth``); ``set_serving`` sets ``""`` and the NodeAgent name.
    ``interceptors``: e.g. ``common.metrics.RpcErrors`` (errors by method and code)."""

    def __init__(self, agent: NodeAgent, listen: str, max_workers: int = 32,
                 board: grpchealth.HealthBoard | None = None, interceptors: Sequence = ()):
        self.board = board or grpchealth.HealthBoard()
        self.server = grpcutil.server(max_workers=max_workers, interceptors=interceptors)
        node_agent_pb2_grpc.add_NodeAgentServicer_to_server(NodeAgentServicer(agent), self.server)
        self.board.attach(self.server, [SERVICE_NAME])
        self.port = self.server.add_insecure_port(listen)
        if self.port == 0:
            raise ListenError(f"cannot listen on {listen} (address in use or not local)")
        self.set_serving(False)

    def start(self) -> None:
        self.server.start()

    def set_serving(self, serving: bool) -> None:
        self.board.set_all(("", SERVICE_NAME), serving)

    def stop(self, grace: float = 1.0) -> None:
        self.set_serving(False)
        self.server.stop(grace).wait(grace + 1)


__all__ = ["NodeAgentServicer", "AgentServer", "node_agent_pb2"]
