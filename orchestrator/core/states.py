"""The orchestrator's named states and the declarative transition table.

The one rule: a state change is legal only if ``(from, to)`` is in
``TRANSITIONS``; anything else raises ``InvalidTransition``. Staying in the
same state is always legal and is not a transition. The controller logs each
``Transition`` as ``from -> to: reason``.

``STARTING`` is where every orchestrator begins (it has not decided yet, e.g.
a successor that just won the election); it may go anywhere, and so may
``BOOTSTRAPPING`` (the first leader may appear in any shape). ``PAUSED`` may be
entered from and left to any state, because the operator's pause flag can
flip at any moment. Going back to ``BOOTSTRAPPING`` from a state that saw a
leader is illegal: the ``term`` key went back to 0, i.e. etcd lost its data,
and an orchestrator must not carry on as if nothing happened (the controller
restarts from ``STARTING`` after logging it). When the members report terms
they have seen, that case is ``RESEEDING`` instead (``core.reseed``), which
any state may enter.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    STARTING = "starting"                # no decision made yet
    BOOTSTRAPPING = "bootstrapping"      # no leader ever: waiting for a node to initialize
    HEALTHY = "healthy"                  # leader up, standbys streaming from it
    REPOINTING = "repointing"            # leader up, some standbys told to follow / rejoin
    DEGRADED = "degraded"                # leader up, but members missing or sync set short
    PRIMARY_SUSPECT = "primary_suspect"  # leader key held, its agent does not answer
    FAILING_OVER = "failing_over"        # leader gone: winner picked / dead lease revoked
    PROMOTING = "promoting"              # Promote sent, waiting for the new leader key
    NO_CANDIDATE = "no_candidate"        # leader gone, nobody may be promoted yet
    SWITCHING_OVER = "switching_over"    # operator switchover in progress
    PAUSED = "paused"                    # operator pause: no automatic actions
    RESEEDING = "reseeding"              # etcd lost its data: re-seeding term/initialize from the members
    RESTARTING = "restarting"            # the leader's engine restarts by the operator's request (planned)


class InvalidTransition(ValueError):
    """``(from, to)`` is not in the transition table."""


@dataclass(frozen=True)
class Transition:
    """One logged state change."""
    frm: State
    to: State
    reason: str

    def __str__(self) -> str:
        return f"{self.frm.value} -> {self.to.value}: {self.reason}"


S = State

# (from, to) -> what such a change means. Read it as the state machine's spec.
_LEADER_UP = (S.HEALTHY, S.REPOINTING, S.DEGRADED)
_DECIDED = tuple(s for s in State if s is not S.STARTING)  # nothing goes back to STARTING
TRANSITIONS: dict[tuple[State, State], str] = {}


def _allow(frms: tuple[State, ...], tos: tuple[State, ...], meaning: str) -> None:
    for frm in frms:
        for to in tos:
            if frm is not to:
                TRANSITIONS.setdefault((frm, to), meaning)


_allow((S.STARTING,), _DECIDED, "first decision of this orchestrator")
_allow(tuple(State), (S.PAUSED,), "operator paused automatic failover")
_allow((S.PAUSED,), _DECIDED, "operator resumed automatic failover")
_allow((S.BOOTSTRAPPING,), _DECIDED, "the first leader appeared (in whatever shape)")
_allow(_LEADER_UP, _LEADER_UP, "member health changed under a healthy leader")
_allow(_LEADER_UP, (S.PRIMARY_SUSPECT,), "the leader's agent stopped answering")
_allow(_LEADER_UP, (S.FAILING_OVER, S.NO_CANDIDATE), "the leader key is gone")
_allow(_LEADER_UP, (S.SWITCHING_OVER,), "operator requested a switchover")
_allow(_LEADER_UP, (S.PROMOTING,), "an in-flight promote is being finished")
_allow((S.PRIMARY_SUSPECT,), _LEADER_UP, "the leader's agent answers again")
_allow((S.PRIMARY_SUSPECT,), (S.FAILING_OVER, S.NO_CANDIDATE), "the leader key expired or was revoked")
_allow((S.PRIMARY_SUSPECT,), (S.PROMOTING, S.SWITCHING_OVER), "an in-flight operation is being finished")
_allow((S.FAILING_OVER,), (S.PROMOTING,), "promote sent to the winner")
_allow((S.FAILING_OVER,), _LEADER_UP, "the new leader took the key")
_allow((S.FAILING_OVER,), (S.NO_CANDIDATE, S.PRIMARY_SUSPECT), "candidates changed before the promote")
_allow((S.FAILING_OVER,), (S.SWITCHING_OVER,), "an in-flight switchover is being finished")
_allow((S.PROMOTING,), _LEADER_UP, "the new leader took the key")
_allow((S.PROMOTING,), (S.FAILING_OVER, S.NO_CANDIDATE), "the promote timed out or the winner vanished")
_allow((S.PROMOTING,), (S.PRIMARY_SUSPECT,), "the new leader's agent stopped answering")
_allow((S.NO_CANDIDATE,), (S.FAILING_OVER, S.PROMOTING), "a candidate became eligible")
_allow((S.NO_CANDIDATE,), _LEADER_UP, "a leader appeared")
_allow((S.NO_CANDIDATE,), (S.PRIMARY_SUSPECT, S.BOOTSTRAPPING, S.SWITCHING_OVER), "the cluster changed under us")
_allow((S.PROMOTING,), (S.SWITCHING_OVER,), "a switchover began right after the promote")
_allow((S.SWITCHING_OVER,), _LEADER_UP, "switchover finished or cancelled")
_allow((S.SWITCHING_OVER,), (S.PROMOTING, S.FAILING_OVER, S.NO_CANDIDATE, S.PRIMARY_SUSPECT),
       "switchover moved on to promoting the target")
# A planned restart is reported by the leader's agent itself and may begin or
# end under any state that sees a leader; its deadline ends it in any case.
_allow(tuple(State), (S.RESTARTING,), "the operator restarts the leader's engine")
_allow((S.RESTARTING,), _DECIDED, "the planned restart ended (or its deadline passed)")
_allow(tuple(State), (S.RESEEDING,), "etcd lost its data while the members kept theirs")
_allow((S.RESEEDING,), _DECIDED, "the keyspace was re-seeded (or a leader appeared)")


def transition(frm: State, to: State, reason: str) -> Transition | None:
    """Check ``frm -> to`` against the table.

    Returns the ``Transition`` to log, or None when ``frm is to``.
    Raises ``InvalidTransition`` for a pair the table does not allow.
    """
    if frm is to:
        return None
    if (frm, to) not in TRANSITIONS:
        raise InvalidTransition(f"{frm.value} -> {to.value} is not a legal transition ({reason})")
    return Transition(frm, to, reason)
