from walrus_ha.protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Leader(_message.Message):
    __slots__ = ("name", "term", "timeline", "agent_address", "data_address", "since", "present", "writable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    term: int
    timeline: int
    agent_address: str
    data_address: str
    since: float
    present: bool
    writable: bool
    def __init__(self, name: _Optional[str] = ..., term: _Optional[int] = ..., timeline: _Optional[int] = ..., agent_address: _Optional[str] = ..., data_address: _Optional[str] = ..., since: _Optional[float] = ..., present: _Optional[bool] = ..., writable: _Optional[bool] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("name", "role", "agent_address", "data_address", "timeline", "term", "flush_lsn", "replay_lsn", "lag_bytes", "streaming", "fenced", "reachable", "tags", "upstream", "is_leader", "in_sync_set", "write_error", "write_error_since", "http", "state", "needs_reclone", "restart_left_s", "pending_restart", "config_revision")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LSN_FIELD_NUMBER: _ClassVar[int]
    LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_SET_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_SINCE_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NEEDS_RECLONE_FIELD_NUMBER: _ClassVar[int]
    RESTART_LEFT_S_FIELD_NUMBER: _ClassVar[int]
    PENDING_RESTART_FIELD_NUMBER: _ClassVar[int]
    CONFIG_REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: _common_pb2.Role
    agent_address: str
    data_address: str
    timeline: int
    term: int
    flush_lsn: int
    replay_lsn: int
    lag_bytes: int
    streaming: bool
    fenced: bool
    reachable: bool
    tags: _containers.ScalarMap[str, str]
    upstream: str
    is_leader: bool
    in_sync_set: bool
    write_error: str
    write_error_since: float
    http: str
    state: str
    needs_reclone: bool
    restart_left_s: float
    pending_restart: _containers.RepeatedScalarFieldContainer[str]
    config_revision: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., agent_address: _Optional[str] = ..., data_address: _Optional[str] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ..., flush_lsn: _Optional[int] = ..., replay_lsn: _Optional[int] = ..., lag_bytes: _Optional[int] = ..., streaming: _Optional[bool] = ..., fenced: _Optional[bool] = ..., reachable: _Optional[bool] = ..., tags: _Optional[_Mapping[str, str]] = ..., upstream: _Optional[str] = ..., is_leader: _Optional[bool] = ..., in_sync_set: _Optional[bool] = ..., write_error: _Optional[str] = ..., write_error_since: _Optional[float] = ..., http: _Optional[str] = ..., state: _Optional[str] = ..., needs_reclone: _Optional[bool] = ..., restart_left_s: _Optional[float] = ..., pending_restart: _Optional[_Iterable[str]] = ..., config_revision: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("name", "flush_lsn", "timeline", "priority", "eligible", "reason", "rank")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    name: str
    flush_lsn: int
    timeline: int
    priority: int
    eligible: bool
    reason: str
    rank: int
    def __init__(self, name: _Optional[str] = ..., flush_lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., priority: _Optional[int] = ..., eligible: _Optional[bool] = ..., reason: _Optional[str] = ..., rank: _Optional[int] = ...) -> None: ...

class HistoryRecord(_message.Message):
    __slots__ = ("term", "kind", "old_leader", "new_leader", "last_primary_lsn", "promoted_lsn", "bytes_possibly_lost", "started_at", "finished_at", "candidates", "reason", "orchestrator", "timeline", "discarded_by", "discarded_bytes", "discarded_records", "discarded_transactions", "discard_fork_lsn", "discard_end_lsn")
    TERM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OLD_LEADER_FIELD_NUMBER: _ClassVar[int]
    NEW_LEADER_FIELD_NUMBER: _ClassVar[int]
    LAST_PRIMARY_LSN_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_LSN_FIELD_NUMBER: _ClassVar[int]
    BYTES_POSSIBLY_LOST_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_BY_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    DISCARD_FORK_LSN_FIELD_NUMBER: _ClassVar[int]
    DISCARD_END_LSN_FIELD_NUMBER: _ClassVar[int]
    term: int
    kind: str
    old_leader: str
    new_leader: str
    last_primary_lsn: int
    promoted_lsn: int
    bytes_possibly_lost: int
    started_at: float
    finished_at: float
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    reason: str
    orchestrator: str
    timeline: int
    discarded_by: str
    discarded_bytes: int
    discarded_records: int
    discarded_transactions: int
    discard_fork_lsn: int
    discard_end_lsn: int
    def __init__(self, term: _Optional[int] = ..., kind: _Optional[str] = ..., old_leader: _Optional[str] = ..., new_leader: _Optional[str] = ..., last_primary_lsn: _Optional[int] = ..., promoted_lsn: _Optional[int] = ..., bytes_possibly_lost: _Optional[int] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., reason: _Optional[str] = ..., orchestrator: _Optional[str] = ..., timeline: _Optional[int] = ..., discarded_by: _Optional[str] = ..., discarded_bytes: _Optional[int] = ..., discarded_records: _Optional[int] = ..., discarded_transactions: _Optional[int] = ..., discard_fork_lsn: _Optional[int] = ..., discard_end_lsn: _Optional[int] = ...) -> None: ...

class GetLeaderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchLeaderRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersReply(_message.Message):
    __slots__ = ("members", "leader", "state", "paused", "sync_standbys", "switchover_pending", "switchover_candidate", "switchover_scheduled_at")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    SYNC_STANDBYS_FIELD_NUMBER: _ClassVar[int]
    SWITCHOVER_PENDING_FIELD_NUMBER: _ClassVar[int]
    SWITCHOVER_CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    SWITCHOVER_SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    leader: Leader
    state: str
    paused: bool
    sync_standbys: str
    switchover_pending: bool
    switchover_candidate: str
    switchover_scheduled_at: float
    def __init__(self, members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., leader: _Optional[_Union[Leader, _Mapping]] = ..., state: _Optional[str] = ..., paused: _Optional[bool] = ..., sync_standbys: _Optional[str] = ..., switchover_pending: _Optional[bool] = ..., switchover_candidate: _Optional[str] = ..., switchover_scheduled_at: _Optional[float] = ...) -> None: ...

class SwitchoverRequest(_message.Message):
    __slots__ = ("candidate", "expected_leader", "scheduled_at")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LEADER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    expected_leader: str
    scheduled_at: float
    def __init__(self, candidate: _Optional[str] = ..., expected_leader: _Optional[str] = ..., scheduled_at: _Optional[float] = ...) -> None: ...

class FailoverRequest(_message.Message):
    __slots__ = ("candidate", "force")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    force: bool
    def __init__(self, candidate: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class OperationReply(_message.Message):
    __slots__ = ("accepted", "detail", "leader", "requested_at")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    detail: str
    leader: Leader
    requested_at: float
    def __init__(self, accepted: _Optional[bool] = ..., detail: _Optional[str] = ..., leader: _Optional[_Union[Leader, _Mapping]] = ..., requested_at: _Optional[float] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("requested_at",)
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    requested_at: float
    def __init__(self, requested_at: _Optional[float] = ...) -> None: ...

class OperationStatus(_message.Message):
    __slots__ = ("pending", "outcome", "reason", "state", "detail", "leader")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    pending: bool
    outcome: str
    reason: str
    state: str
    detail: str
    leader: Leader
    def __init__(self, pending: _Optional[bool] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., state: _Optional[str] = ..., detail: _Optional[str] = ..., leader: _Optional[_Union[Leader, _Mapping]] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class HistoryReply(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[HistoryRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[HistoryRecord, _Mapping]]] = ...) -> None: ...

class ExplainFailoverRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExplainFailoverReply(_message.Message):
    __slots__ = ("winner", "candidates", "state", "detail")
    WINNER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    winner: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    state: str
    detail: str
    def __init__(self, winner: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., state: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class CancelSwitchoverRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestartMemberRequest(_message.Message):
    __slots__ = ("member", "role", "pending", "force", "timeout_s")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    member: str
    role: str
    pending: bool
    force: bool
    timeout_s: float
    def __init__(self, member: _Optional[str] = ..., role: _Optional[str] = ..., pending: _Optional[bool] = ..., force: _Optional[bool] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ReinitMemberRequest(_message.Message):
    __slots__ = ("member", "force")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    member: str
    force: bool
    def __init__(self, member: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...
