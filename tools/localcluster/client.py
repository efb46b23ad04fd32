"""Small gRPC clients for the operator tools: the orchestrators' Cluster
service (try each address in turn) and an agent's GetStatus.

Vendor errors stay here: callers get ``ClusterUnavailable`` (no orchestrator
answered) or ``OperationRefused`` (an orchestrator answered with an error
status, e.g. INVALID_ARGUMENT), both ``WalrusError``s with a sentence.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import grpc

from walrus_ha.common import grpcutil, rpcerrors
from walrus_ha.common.errors import WalrusError
from walrus_ha.protos import cluster_pb2, cluster_pb2_grpc, node_agent_pb2, node_agent_pb2_grpc

# Reconnect fast: a restarted or newly promoted peer must be reachable within
# milliseconds, not after grpc's default 1 s+ backoff.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 250)]


def fast_channel(address: str) -> grpc.Channel:
    """A channel to ``host:port`` with keepalives and a short reconnect backoff."""
    return grpcutil.channel(address, FAST_RECONNECT)

_RETRY_NEXT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED)


class ClusterUnavailable(WalrusError):
    """No orchestrator answered."""


class OperationRefused(WalrusError):
    """An orchestrator answered with an error status (bad argument, wrong
    state); ``reason`` is its reason code (``common.rpcerrors``)."""

    def __init__(self, code: grpc.StatusCode, detail: str, address: str,
                 reason: rpcerrors.Reason = rpcerrors.Reason.UNSPECIFIED):
        super().__init__(f"{address} refused: {code.name}: {detail}")
        self.code = code
        self.detail = detail
        self.reason = reason


class ClusterClient:
    """The Cluster service of a set of orchestrators; each call tries them in order.

    The address that answered last is tried first next time, so a dead
    orchestrator costs one failed connect, not one per call.
    """

    def __init__(self, addresses: list[str] | tuple[str, ...], timeout_s: float = 2.0):
        if not addresses:
            raise ClusterUnavailable("no orchestrator address given (use --dir or --orchestrators)")
        self.addresses = list(addresses)
        self.timeout_s = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, address: str) -> cluster_pb2_grpc.ClusterStub:
        with self._lock:
            ch = self._channels.get(address)
            if ch is None:
                ch = self._channels[address] = fast_channel(address)
        return cluster_pb2_grpc.ClusterStub(ch)

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()

    def call(self, method: str, request, timeout_s: float | None = None):
        """Call ``method`` on the first orchestrator that answers."""
        errors = []
        for address in list(self.addresses):
            try:
                reply = getattr(self._stub(address), method)(request, timeout=timeout_s or self.timeout_s)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                if code in _RETRY_NEXT:
                    errors.append(f"{address}: {code.name}")
                    continue
                raise OperationRefused(code, exc.details() or "", address, rpcerrors.reason_of(exc)) from None
            self._prefer(address)
            return reply
        raise ClusterUnavailable(f"no orchestrator answered {method} ({'; '.join(errors)})")

    def call_each(self, method: str, request, timeout_s: float | None = None) -> dict[str, object]:
        """Call ``method`` on every orchestrator; address -> reply, or None if it did not answer."""
        replies: dict[str, object] = {}
        for address in list(self.addresses):
            try:
                replies[address] = getattr(self._stub(address), method)(request, timeout=timeout_s or self.timeout_s)
            except grpc.RpcError:
                replies[address] = None
        return replies

    def active_members(self) -> cluster_pb2.ListMembersReply | None:
        """ListMembers from the active orchestrator (spares say state "spare"), or None."""
        for reply in self.call_each("ListMembers", cluster_pb2.ListMembersRequest()).values():
            if reply is not None and reply.state != "spare":
                return reply
        return None

    def _prefer(self, address: str) -> None:
        with self._lock:
            if self.addresses[0] != address:
                self.addresses.remove(address)
                self.addresses.insert(0, address)

    def get_leader(self) -> cluster_pb2.Leader:
        return self.call("GetLeader", cluster_pb2.GetLeaderRequest())

    def list_members(self) -> cluster_pb2.ListMembersReply:
        return self.call("ListMembers", cluster_pb2.ListMembersRequest())

    def history(self, limit: int = 20) -> cluster_pb2.HistoryReply:
        return self.call("History", cluster_pb2.HistoryRequest(limit=limit))

    def explain(self) -> cluster_pb2.ExplainFailoverReply:
        return self.call("ExplainFailover", cluster_pb2.ExplainFailoverRequest())

    def switchover(self, candidate: str = "", expected_leader: str = "",
                   scheduled_at: float = 0.0) -> cluster_pb2.OperationReply:
        return self.call("Switchover", cluster_pb2.SwitchoverRequest(candidate=candidate,
                                                                     expected_leader=expected_leader,
                                                                     scheduled_at=scheduled_at))

    def cancel_switchover(self) -> cluster_pb2.OperationReply:
        return self.call("CancelSwitchover", cluster_pb2.CancelSwitchoverRequest())

    def restart_member(self, member: str, role: str = "", pending: bool = False, force: bool = False,
                       timeout_s: float = 0.0, rpc_timeout_s: float | None = None) -> cluster_pb2.OperationReply:
        """The orchestrator restarts ``member``'s engine through its agent; returns when it is back."""
        return self.call("RestartMember", cluster_pb2.RestartMemberRequest(
            member=member, role=role, pending=pending, force=force, timeout_s=timeout_s), timeout_s=rpc_timeout_s)

    def reinit_member(self, member: str, force: bool = False) -> cluster_pb2.OperationReply:
        """Schedule a re-clone of standby ``member``; returns at once (watch ListMembers)."""
        return self.call("ReinitMember", cluster_pb2.ReinitMemberRequest(member=member, force=force),
                         timeout_s=max(self.timeout_s, 15.0))

    def failover(self, candidate: str = "", force: bool = False) -> cluster_pb2.OperationReply:
        return self.call("Failover", cluster_pb2.FailoverRequest(candidate=candidate, force=force))

    def operation(self, requested_at: float) -> cluster_pb2.OperationStatus:
        """The fate of the Switchover/Failover request with that ``requested_at``."""
        return self.call("GetOperation", cluster_pb2.GetOperationRequest(requested_at=requested_at))

    def pause(self) -> cluster_pb2.OperationReply:
        return self.call("Pause", cluster_pb2.PauseRequest())

    def resume(self) -> cluster_pb2.OperationReply:
        return self.call("Resume", cluster_pb2.ResumeRequest())

    def watch_leader(self, stop: threading.Event | None = None,
                     on_error: Callable[[str], None] | None = None) -> Iterator[cluster_pb2.Leader]:
        """Yield the leader at once and on every change; reconnects to the next
        orchestrator when a stream breaks, until ``stop`` is set."""
        stop = stop or threading.Event()
        i = 0
        while not stop.is_set():
            address = self.addresses[i % len(self.addresses)]
            stream = self._stub(address).WatchLeader(cluster_pb2.WatchLeaderRequest())
            cancel = threading.Thread(target=_cancel_on, args=(stop, stream), daemon=True)
            cancel.start()
            try:
                yield from stream
            except grpc.RpcError as exc:
                if stop.is_set():
                    return
                if on_error:
                    on_error(f"{address}: {exc.code().name}")
            i += 1
            stop.wait(0.1)


def _cancel_on(stop: threading.Event, stream) -> None:
    while not stop.wait(0.2):
        if stream.done() if hasattr(stream, "done") else False:
            return
    stream.cancel()


class AgentClient:
    """GetStatus / Reload of node agents, one cached channel per address."""

    def __init__(self, timeout_s: float = 1.0):
        self.timeout_s = timeout_s
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, address: str) -> node_agent_pb2_grpc.NodeAgentStub:
        with self._lock:
            ch = self._channels.get(address)
            if ch is None:
                ch = self._channels[address] = fast_channel(address)
        return node_agent_pb2_grpc.NodeAgentStub(ch)

    def status(self, address: str) -> node_agent_pb2.NodeStatus | None:
        """The agent's status, or None if it does not answer in time."""
        try:
            return self._stub(address).GetStatus(node_agent_pb2.GetStatusRequest(), timeout=self.timeout_s)
        except grpc.RpcError:
            return None

    def reload(self, address: str) -> node_agent_pb2.ReloadReply:
        """``Reload``: the agent re-reads its config file. OperationRefused (its
        sentence names the file and key) or ClusterUnavailable (no answer)."""
        try:
            return self._stub(address).Reload(node_agent_pb2.ReloadRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            if code in _RETRY_NEXT:
                raise ClusterUnavailable(f"agent {address} did not answer Reload ({code.name})") from None
            raise OperationRefused(code, exc.details() or "", address, rpcerrors.reason_of(exc)) from None

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()
