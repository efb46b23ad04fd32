"""The orchestrator's pure decision core: no I/O, no clock, no randomness.

Entry points: ``decide(snapshot, config, now, previous=State.STARTING) ->
Decision`` (one loop's decision) and ``explain(snapshot, config) -> Ranking``
(the ExplainFailover dry run). The data model is ``orchestrator.core.model``,
the state machine ``orchestrator.core.states``, the candidate ranking
``orchestrator.core.ranking``, the re-seed of an emptied etcd ``orchestrator.core.reseed`` and the synchronous set rules
``orchestrator.core.syncset``.
"""
from walrus_ha.orchestrator.core.decide import decide, repoint_actions
from walrus_ha.orchestrator.core.model import (
    Action,
    ActionKind,
    Candidate,
    ClearFailoverState,
    ClearSwitchover,
    ClusterSnapshot,
    CoreConfig,
    Decision,
    DemoteForSwitchover,
    Exclusion,
    FailoverState,
    Follow,
    HistoryEntry,
    LeaderView,
    MemberView,
    OperationKind,
    Phase,
    Promote,
    PublishSync,
    Ranking,
    RecordHistory,
    Rejoin,
    RequestOutcome,
    RevokeLeaderLease,
    Role,
    SaveFailoverState,
    SwitchoverRequest,
    SyncMethod,
    SyncView,
    Wait,
)
from walrus_ha.orchestrator.core.ranking import explain, rank
from walrus_ha.orchestrator.core.reseed import ReseedKeyspace
from walrus_ha.orchestrator.core.states import TRANSITIONS, InvalidTransition, State, Transition, transition

__all__ = [
    "decide", "repoint_actions", "explain", "rank",
    "TRANSITIONS", "InvalidTransition", "State", "Transition", "transition",
    "Role",
    "SyncMethod",
    "OperationKind",
    "Phase",
    "Exclusion",
    "RequestOutcome",
    "MemberView",
    "LeaderView",
    "SyncView",
    "SwitchoverRequest",
    "Candidate",
    "Ranking",
    "FailoverState",
    "ClusterSnapshot",
    "CoreConfig",
    "ActionKind",
    "Promote",
    "Follow",
    "Rejoin",
    "RevokeLeaderLease",
    "PublishSync",
    "HistoryEntry",
    "RecordHistory",
    "ClearSwitchover",
    "DemoteForSwitchover",
    "SaveFailoverState",
    "ClearFailoverState",
    "ReseedKeyspace",
    "Wait",
    "Decision",
    "Action",
]
