"""What the agent's loop does next, as a pure function of what it knows.

The one rule: a node acts as primary only while it holds the leader key under
its own live lease. A node whose data says "primary" but holds no leader key
stays fenced; it either waits (no leader: the orchestrator decides) or
rejoins the leader it finds. No I/O and no clock in this module.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from walrus_ha.node.engine.base import Role, Upstream


class Step(enum.Enum):
    KEEP = "keep"                          # nothing to change
    BOOTSTRAP = "bootstrap"                # empty data, no leader: try to initialize the cluster
    CLONE = "clone"                        # empty data, a leader exists: base backup from it
    WAIT_FOR_LEADER = "wait_for_leader"    # no leader: stay as we are (fenced if primary data)
    WAIT_FOR_EXPIRY = "wait_for_expiry"    # the leader key names us under a lease we do not hold
    FOLLOW = "follow"                      # stream from the leader
    REJOIN = "rejoin"                      # diverged / primary data / needs reclone: rewind or re-clone
    LEADERSHIP_LOST = "leadership_lost"    # we held the leader key and it is gone or someone else's
    RESIGN = "resign"                      # we hold the leader key but the engine is not running
    RELEASE_KEY = "release_key"            # the leader key is ours (our live lease) but we do not act as
                                           # leader: release it so the cluster can move on


@dataclass(frozen=True)
class LeaderFacts:
    name: str
    term: int
    data_address: str
    timeline: int = 0


@dataclass(frozen=True)
class Facts:
    """One snapshot of what the agent knows (from etcd and its engine)."""
    me: str
    initialized: bool
    role: Role                    # engine role (STOPPED if not started)
    upstream: str                 # engine's current upstream, "name@host:port" or ""
    engine_term: int
    needs_reclone: bool
    held_term: int                # term of the leader key we hold, 0 if none
    leader: LeaderFacts | None
    highest_term: int             # highest term seen anywhere
    initialize_claimed_by: str | None = None
    leader_lease_is_ours: bool = False     # the leader key is bound to our current lease
    foreign_lease_overdue: bool = False    # the key naming us (not our lease) outlived its ttl
    members_with_data: tuple[str, ...] = ()    # other members whose records show data of a cluster
    bootstrap_wait_left_s: float = 0.0     # how much longer an empty node watches an empty keyspace


@dataclass(frozen=True)
class Decision:
    step: Step
    reason: str
    upstream: Upstream | None = None
    term: int = 0


def decide(f: Facts) -> Decision:
    """The next step for the agent loop (see module rule)."""
    if f.held_term:
        return _while_holding(f)
    if not f.initialized:
        return _uninitialized(f)
    lead = f.leader
    if lead is None:
        why = "no leader; primary data stays fenced until promoted" if f.role is Role.PRIMARY \
            else "no leader"
        return Decision(Step.WAIT_FOR_LEADER, why)
    if lead.name == f.me and f.leader_lease_is_ours:
        return Decision(Step.RELEASE_KEY, f"leader key (term {lead.term}) is bound to our lease but this "
                                          "node is not acting as leader", term=lead.term)
    if lead.name == f.me and f.foreign_lease_overdue:
        # Only this node creates a key naming it, and it is not acting as leader
        # (fenced, no held term): whoever keeps that lease alive, releasing the
        # key (compare-and-delete on that lease and term) is safe, and waiting
        # longer would stall the cluster forever.
        return Decision(Step.RELEASE_KEY, f"leader key (term {lead.term}) names this node under a lease "
                                          "it does not hold that outlived its ttl; releasing it", term=lead.term)
    if lead.name == f.me:
        return Decision(Step.WAIT_FOR_EXPIRY, f"leader key (term {lead.term}) names this node under "
                                              "a lease it does not hold; staying fenced until it expires")
    if lead.term < f.highest_term:
        return Decision(Step.KEEP, f"leader term {lead.term} older than seen {f.highest_term}")
    up = Upstream(lead.name, lead.data_address, lead.timeline)
    if f.role is Role.PRIMARY:
        return Decision(Step.REJOIN, f"primary data but {lead.name} leads at term {lead.term}", up, lead.term)
    if f.needs_reclone:
        return Decision(Step.REJOIN, "engine cannot catch up from WAL", up, lead.term)
    if f.role is Role.STOPPED:
        return Decision(Step.FOLLOW, "engine stopped", up, lead.term)
    if f.upstream != str(up) or f.engine_term < lead.term:
        return Decision(Step.FOLLOW, f"following {f.upstream or 'nobody'} at term {f.engine_term}, "
                                     f"leader is {up} at term {lead.term}", up, lead.term)
    return Decision(Step.KEEP, "following the leader")


def _while_holding(f: Facts) -> Decision:
    lead = f.leader
    if lead is None:
        return Decision(Step.LEADERSHIP_LOST, "leader key is gone")
    if lead.name != f.me or lead.term != f.held_term:
        return Decision(Step.LEADERSHIP_LOST, f"leader key is {lead.name}'s at term {lead.term}")
    if f.role is not Role.PRIMARY:
        return Decision(Step.RESIGN, f"holding the leader key but the engine is {f.role.value}; "
                                     "releasing it so another member can take over", term=f.held_term)
    return Decision(Step.KEEP, "holding the leader key")


def _uninitialized(f: Facts) -> Decision:
    lead = f.leader
    if lead is not None and lead.name != f.me:
        up = Upstream(lead.name, lead.data_address, lead.timeline)
        return Decision(Step.CLONE, f"empty data dir; {lead.name} leads", up, lead.term)
    if lead is None and f.initialize_claimed_by is None and f.members_with_data:
        # etcd lost its keyspace (or was replaced) while members kept their
        # data: a bootstrap here would start a second, empty cluster that
        # clients would be pointed at. The orchestrator re-seeds instead.
        return Decision(Step.WAIT_FOR_LEADER, f"empty data dir and no initialize key, but "
                                              f"{', '.join(f.members_with_data)} hold data of this cluster "
                                              "(etcd lost its keyspace?): not bootstrapping a second cluster; "
                                              "waiting for the orchestrator to re-seed")
    if lead is None and f.initialize_claimed_by is None and f.bootstrap_wait_left_s > 0:
        return Decision(Step.WAIT_FOR_LEADER, "empty data dir and an empty keyspace: watching it for "
                                              "bootstrap_wait for members holding data before bootstrapping")
    if lead is None and f.initialize_claimed_by in (None, f.me):
        return Decision(Step.BOOTSTRAP, "empty data dir and no leader")
    return Decision(Step.WAIT_FOR_LEADER, f"empty data dir; cluster initialized by "
                                          f"{f.initialize_claimed_by}, waiting for a leader")
