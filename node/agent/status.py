"""The agent's state and what GetStatus reports (plain data, no behaviour).

``AgentState`` is ``NodeStatus.state``; ``AgentStatus`` is the engine's status
plus the agent's view. ``convert`` turns it into protobuf.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import walrus_ha
from walrus_ha.node.engine.base import EngineStatus


class AgentState(enum.Enum):
    STARTING = "starting"
    BOOTSTRAPPING = "bootstrapping"
    CLONING = "cloning"
    WAITING = "waiting"            # no leader to follow (standby or empty data)
    FENCED = "fenced"              # primary data, not leader: waits for Promote or a leader to rejoin
    PRIMARY = "primary"            # holds the leader key
    STANDBY = "standby"            # follows the leader
    REJOINING = "rejoining"
    RESTARTING = "restarting"      # a planned engine restart (``operations.restart``) runs
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class AgentStatus:
    """What GetStatus reports: the engine's status plus the agent's view."""
    name: str
    cluster: str
    agent_address: str
    data_address: str
    engine: EngineStatus
    holds_leader: bool
    leader_term: int
    lease_remaining_s: float
    tags: dict = field(default_factory=dict)
    state: AgentState = AgentState.STARTING
    version: str = walrus_ha.__version__
    restart_left_s: float = 0.0    # > 0 while a planned restart runs: seconds to its deadline
    config_revision: int = 0                  # the cluster config revision in force (0: none)
    pending_restart: tuple[str, ...] = ()     # settings waiting for a restart (engine, agent:<key>)


__all__ = ["AgentState", "AgentStatus"]
