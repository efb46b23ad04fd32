"""What the orchestrator learned from one agent: the input types of the
snapshot builder (plain frozen dataclasses, no gRPC).

``ProbeOutcome`` keeps "refused" and "timed out" apart on purpose: the fast
path (docs/design.md safety 5) may only treat a primary whose port *refuses*
connections as dead; a hung or partitioned one merely times out.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from walrus_ha.node.engine.base import EngineStatus, Role


class ProbeOutcome(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"        # the agent's port refused the connection: provably down
    TIMEOUT = "timeout"        # no answer within rpc_timeout: hung, slow or partitioned
    ERROR = "error"            # answered with an error status
    NO_ADDRESS = "no_address"  # nothing to call (no member record)


@dataclass(frozen=True)
class AgentStatus:
    """A NodeAgent ``NodeStatus`` as a dataclass."""
    name: str
    agent_address: str = ""
    data_address: str = ""
    engine: EngineStatus = field(default_factory=lambda: EngineStatus(role=Role.STOPPED))
    holds_leader: bool = False
    leader_term: int = 0
    lease_remaining_s: float = 0.0
    tags: tuple[tuple[str, str], ...] = ()
    state: str = ""
    version: str = ""

    def tag(self, key: str, default: str = "") -> str:
        return dict(self.tags).get(key, default)


@dataclass(frozen=True)
class AgentProbe:
    """The result of one ``GetStatus`` call (plus what the status stream saw)."""
    name: str
    address: str
    outcome: ProbeOutcome
    status: AgentStatus | None = None
    detail: str = ""
    stream_broken: bool = False   # its WatchStatus stream broke and has not come back

    @property
    def answered(self) -> bool:
        return self.outcome is ProbeOutcome.ANSWERED and self.status is not None

    @property
    def refused(self) -> bool:
        return self.outcome is ProbeOutcome.REFUSED
