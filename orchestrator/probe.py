"""What the orchestrator learned from one agent: the input of the snapshot
builder (plain frozen dataclasses, no gRPC).

``ProbeOutcome`` keeps "refused" and "timed out" apart on purpose: the fast
path (docs/design.md safety 5) may only treat a primary whose port *refuses*
connections as dead; a hung or partitioned one merely times out. An answer is
already the core's ``MemberView`` (``convert.probe_from_pb``); the probe adds
only what the view does not hold.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from walrus_ha.orchestrator.core.model import MemberView


class ProbeOutcome(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"        # the agent's port refused the connection: provably down
    TIMEOUT = "timeout"        # no answer within rpc_timeout: hung, slow or partitioned
    ERROR = "error"            # answered with an error status
    NO_ADDRESS = "no_address"  # nothing to call (no member record)


@dataclass(frozen=True)
class AgentProbe:
    """The result of one ``GetStatus`` call (or one push of the agent's
    ``WatchStatus`` stream), plus what the status stream saw.

    ``member``: the answer as the core's view, from the agent's status alone
    (``snapshot.member_view`` adds what only etcd knows: the member key,
    ``highest_term``, and tags the agent did not send). ``tags`` are the
    agent's tags as sent (strings); ``holds_leader`` / ``leader_term`` its own
    view of the leader key (a change of them wakes the controller).
    """
    name: str
    address: str
    outcome: ProbeOutcome
    member: MemberView | None = None
    tags: tuple[tuple[str, str], ...] = ()
    holds_leader: bool = False
    leader_term: int = 0
    detail: str = ""
    stream_broken: bool = False   # its WatchStatus stream broke and has not come back
    state: str = ""               # the agent's state (``NodeStatus.state``), for operators

    @property
    def answered(self) -> bool:
        return self.outcome is ProbeOutcome.ANSWERED and self.member is not None

    @property
    def refused(self) -> bool:
        return self.outcome is ProbeOutcome.REFUSED
