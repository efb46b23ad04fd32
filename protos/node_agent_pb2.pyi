from walrus_ha.protos import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeStatus(_message.Message):
    __slots__ = ("name", "cluster", "agent_address", "data_address", "engine", "holds_leader", "leader_term", "lease_remaining_s", "tags", "state", "version", "restart_left_s", "config_revision", "pending_restart")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    AGENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    HOLDS_LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_TERM_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_S_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESTART_LEFT_S_FIELD_NUMBER: _ClassVar[int]
    CONFIG_REVISION_FIELD_NUMBER: _ClassVar[int]
    PENDING_RESTART_FIELD_NUMBER: _ClassVar[int]
    name: str
    cluster: str
    agent_address: str
    data_address: str
    engine: _common_pb2.EngineStatus
    holds_leader: bool
    leader_term: int
    lease_remaining_s: float
    tags: _containers.ScalarMap[str, str]
    state: str
    version: str
    restart_left_s: float
    config_revision: int
    pending_restart: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., cluster: _Optional[str] = ..., agent_address: _Optional[str] = ..., data_address: _Optional[str] = ..., engine: _Optional[_Union[_common_pb2.EngineStatus, _Mapping]] = ..., holds_leader: _Optional[bool] = ..., leader_term: _Optional[int] = ..., lease_remaining_s: _Optional[float] = ..., tags: _Optional[_Mapping[str, str]] = ..., state: _Optional[str] = ..., version: _Optional[str] = ..., restart_left_s: _Optional[float] = ..., config_revision: _Optional[int] = ..., pending_restart: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchStatusRequest(_message.Message):
    __slots__ = ("min_interval_s",)
    MIN_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    min_interval_s: float
    def __init__(self, min_interval_s: _Optional[float] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("term", "reason")
    TERM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    term: int
    reason: str
    def __init__(self, term: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class DemoteRequest(_message.Message):
    __slots__ = ("term", "reason")
    TERM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    term: int
    reason: str
    def __init__(self, term: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class FollowRequest(_message.Message):
    __slots__ = ("term", "leader_name", "leader_data_address", "leader_timeline")
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_NAME_FIELD_NUMBER: _ClassVar[int]
    LEADER_DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_TIMELINE_FIELD_NUMBER: _ClassVar[int]
    term: int
    leader_name: str
    leader_data_address: str
    leader_timeline: int
    def __init__(self, term: _Optional[int] = ..., leader_name: _Optional[str] = ..., leader_data_address: _Optional[str] = ..., leader_timeline: _Optional[int] = ...) -> None: ...

class RejoinRequest(_message.Message):
    __slots__ = ("term", "leader_name", "leader_data_address", "allow_reclone")
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_NAME_FIELD_NUMBER: _ClassVar[int]
    LEADER_DATA_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_RECLONE_FIELD_NUMBER: _ClassVar[int]
    term: int
    leader_name: str
    leader_data_address: str
    allow_reclone: bool
    def __init__(self, term: _Optional[int] = ..., leader_name: _Optional[str] = ..., leader_data_address: _Optional[str] = ..., allow_reclone: _Optional[bool] = ...) -> None: ...

class ActionReply(_message.Message):
    __slots__ = ("changed", "detail", "status")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    detail: str
    status: NodeStatus
    def __init__(self, changed: _Optional[bool] = ..., detail: _Optional[str] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ...) -> None: ...

class RestartRequest(_message.Message):
    __slots__ = ("role", "timeout_s", "reason", "pending")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    role: str
    timeout_s: float
    reason: str
    pending: bool
    def __init__(self, role: _Optional[str] = ..., timeout_s: _Optional[float] = ..., reason: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class ReinitRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadReply(_message.Message):
    __slots__ = ("changed", "applied", "pending_restart", "detail", "config_revision")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    PENDING_RESTART_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_REVISION_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    applied: _containers.RepeatedScalarFieldContainer[str]
    pending_restart: _containers.RepeatedScalarFieldContainer[str]
    detail: str
    config_revision: int
    def __init__(self, changed: _Optional[bool] = ..., applied: _Optional[_Iterable[str]] = ..., pending_restart: _Optional[_Iterable[str]] = ..., detail: _Optional[str] = ..., config_revision: _Optional[int] = ...) -> None: ...
