"""A late "lease lost" notice about an older lease must not fence or drop a
leadership taken since under the lease the keeper renews now (in-process
agent: real etcd, real embedded engine, real lease keeper).

How it happens for real: the keeper thread learns its lease is gone and
waits for the agent lock in ``_on_lost`` while the loop grants a new lease
and a Promote takes the leader key under it; the late notice then dropped
that fresh leadership (the node stayed fenced holding nothing).
"""
from __future__ import annotations

import pytest
import yaml

from agent_procs import TIMING, wait_for
from walrus_ha.node.agent.agent import AgentState, NodeAgent
from walrus_ha.node.config import load_node_config
from walrus_ha.tools.etcd_server import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(tmp_path, etcd, cluster_name):
    cfg = {"name": "a", "cluster": cluster_name, "data_dir": str(tmp_path / "data"),
           "agent_listen": f"127.0.0.1:{free_port()}", "data_listen": f"127.0.0.1:{free_port()}",
           "etcd": {"endpoints": [etcd.endpoint]}, **TIMING}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    a = NodeAgent(load_node_config(str(path)))
    a.start()
    try:
        yield a
    finally:
        a.stop()


def test_late_notice_about_an_old_lease_keeps_the_leadership(agent):
    wait_for(lambda: agent.status().state is AgentState.PRIMARY, what="bootstrapped primary")
    assert agent.held_lease == agent.keeper.lease_id is not None
    agent._on_lost("lease 1234 expired or was revoked")       # about a lease we no longer use
    s = agent.status()
    assert s.holds_leader and s.state is AgentState.PRIMARY and not s.engine.fenced


def test_notice_about_the_held_lease_still_fences_and_drops(agent):
    wait_for(lambda: agent.status().state is AgentState.PRIMARY, what="bootstrapped primary")
    agent.keeper.reset(None)                                    # what the keeper does on LeaseLost
    agent._on_lost("lease expired or was revoked")
    s = agent.status()
    assert not s.holds_leader and s.engine.fenced
