"""The seam between the agent and its actions (``actions.py``, ``vouch.py``).

The actions take a request (``TermRequest``, ``RepointRequest``; built and
validated from protobuf by ``convert``) and an ``AgentPort``: the part of
``NodeAgent`` they may read and change. Imports point one way: ``agent``
imports ``actions``, never the reverse; ``NodeAgent`` satisfies ``AgentPort``
structurally.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from walrus_ha.common.dcs import Dcs
from walrus_ha.common.records import ClusterView, LeaderRecord
from walrus_ha.node.agent.leader import LeaseKeeper
from walrus_ha.node.agent.status import AgentState
from walrus_ha.node.config import NodeConfig
from walrus_ha.node.engine.base import Discarded, Engine, Upstream


@dataclass(frozen=True)
class TermRequest:
    """Promote / Demote: the fencing token and why."""
    term: int
    reason: str = ""


@dataclass(frozen=True)
class RepointRequest:
    """Follow / Rejoin: the new leader, its term and whether re-cloning is allowed."""
    term: int
    upstream: Upstream
    allow_reclone: bool = False


class AgentPort(Protocol):
    """What the actions need of the agent. Every action runs under ``lock``.

    Leadership bookkeeping (plain attributes the actions update):
    ``held_term`` / ``held_lease`` (the leader key we hold and its lease; 0 /
    None: none), ``highest_term`` (highest term seen), ``leader_term`` (term of
    the leader key last seen), ``epoch`` (bumped by every leadership / role
    action, so a loop tick that read the view before it re-reads),
    ``fenced_by_deadline``, ``restarted_holding`` (engine restarted fenced
    under our key), ``restart_deadline`` (a planned restart's deadline on
    ``clock``; None: none), ``state``, ``rejoin_report`` (the agent's note of a rejoin that
    discarded nothing or re-cloned), ``view`` (the loop's last etcd view).
    """

    config: NodeConfig
    engine: Engine
    dcs: Dcs
    keeper: LeaseKeeper
    clock: Callable[[], float]
    lock: threading.RLock
    view: ClusterView | None
    held_term: int
    held_lease: int | None
    highest_term: int
    leader_term: int
    epoch: int
    fenced_by_deadline: bool
    restarted_holding: bool
    restart_deadline: float | None
    rejoin_report: Discarded | None
    state: AgentState

    @property
    def stopping(self) -> bool:
        """``stop()`` was called."""

    def set_state(self, state: AgentState, reason: str) -> None:
        """Move to ``state`` (logged as a transition when it changes)."""

    def fence(self, reason: str) -> None:
        """Fence the engine; never raises (a failure is logged)."""

    def drop_leader(self, reason: str) -> None:
        """Forget the leader role (the engine is already fenced): held term and
        lease cleared, lease deadline now, PRIMARY -> FENCED."""

    def apply_sync(self, view: ClusterView) -> None:
        """While primary: apply the published ``sync`` record when it is ours."""

    def reapply_sync(self) -> None:
        """Forget the applied sync set and apply the last view's afresh (a new term)."""

    def leader_record(self, term: int) -> LeaderRecord:
        """The ``leader`` key's value for this node at ``term``."""

    def wake(self) -> None:
        """Run the loop's next tick now."""


__all__ = ["AgentPort", "RepointRequest", "TermRequest"]
