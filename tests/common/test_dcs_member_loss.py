"""A leader's lease survives the loss of the etcd member its client talks to
(real 3-member etcd): ``Dcs.refresh_lease`` moves on to the other members
(all at once once the member in use does not answer) and the agent's
``LeaseKeeper``, holding the leader key, never reaches its fencing deadline,
also when the member killed was the raft leader (renewals wait for the
election) and when it was a follower."""
from __future__ import annotations

import threading

import grpc
import pytest
from etcd3 import etcdrpc

from support_wait import wait_for
from walrus_ha.common.dcs import Dcs
from walrus_ha.node.agent.leader import LeaseKeeper
from walrus_ha.tools.etcd_server import EtcdServer, EtcdServerError, find_etcd, free_port

pytestmark = pytest.mark.integration

# The local cluster's margin with a little more ttl than its 3 s, so a loaded
# CI host does not turn an election into a miss; the renewal path is the same.
TTL, MARGIN = 5.0, 1.0


@pytest.fixture(scope="module")
def etcd3_members(tmp_path_factory):
    try:
        find_etcd()
    except EtcdServerError as exc:
        pytest.skip(str(exc))
    base = tmp_path_factory.mktemp("etcd3")
    ports = [(free_port(), free_port()) for _ in range(3)]
    peers = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    servers = [EtcdServer(base / f"m{i}", client, peer, name=f"m{i}", initial_cluster=peers)
               for i, (client, peer) in enumerate(ports)]
    errors: list[BaseException] = []

    def start(server: EtcdServer) -> None:
        try:
            server.start()
        except BaseException as exc:   # reported below, in the test's thread
            errors.append(exc)
    threads = [threading.Thread(target=start, args=(s,)) for s in servers]   # a quorum must form
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if errors:
            raise errors[0]
        yield servers
    finally:
        for s in servers:
            s.stop()


def _raft_leader(servers: list[EtcdServer]) -> int:
    """Index of the member etcd reports as its raft leader."""
    ids = {}
    leader = None
    for i, s in enumerate(servers):
        with grpc.insecure_channel(s.endpoint) as channel:
            status = etcdrpc.MaintenanceStub(channel).Status(etcdrpc.StatusRequest(), timeout=2)
        ids[status.header.member_id] = i
        leader = status.leader
    return ids[leader]


class _Holder:
    """A LeaseKeeper holding the leader key, recording renewals and misses."""

    def __init__(self, dcs: Dcs):
        self.renewals: list[float] = []
        self.misses: list[str] = []
        self.keeper = LeaseKeeper(dcs, TTL, MARGIN, on_renewed=self.renewals.append,
                                  on_deadline=self.misses.append, on_lost=self.misses.append)
        sent = self.keeper._clock()
        self.keeper.reset(dcs.grant_lease(TTL), sent)
        self.keeper.set_holding(True)
        self.keeper.start()

    def renewed_since(self, count: int, n: int) -> bool:
        return len(self.renewals) >= count + n


@pytest.mark.timeout(120)
@pytest.mark.parametrize("victim", ["raft-leader", "follower"])
def test_leader_lease_renewed_when_its_etcd_member_dies(etcd3_members, victim):
    servers = etcd3_members
    wait_for(lambda: _raft_leader(servers) is not None, 30, what="a raft leader")
    leader = _raft_leader(servers)
    first = leader if victim == "raft-leader" else (leader + 1) % 3
    # The client talks to ``first`` (its first endpoint), the member about to die.
    order = [servers[(first + i) % 3].endpoint for i in range(3)]
    dcs = Dcs(order, f"member-loss-{victim}", timeout_s=1.0)
    holder = _Holder(dcs)
    try:
        wait_for(lambda: holder.renewed_since(0, 2), 30, what="renewals before the kill")
        before = len(holder.renewals)
        servers[first].kill()
        try:
            # Renewed (through the other members) at least three times more, with
            # the deadline never passed: the holder would have fenced.
            wait_for(lambda: holder.renewed_since(before, 3) or holder.misses, 30,
                     what="renewals after the member died")
            assert holder.misses == []
            assert holder.renewed_since(before, 3)
            assert dcs.endpoint().address != servers[first].endpoint
        finally:
            servers[first].start()
    finally:
        holder.keeper.stop()
        dcs.close()
