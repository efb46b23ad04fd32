from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PRIMARY: _ClassVar[Role]
    ROLE_STANDBY: _ClassVar[Role]
    ROLE_STOPPED: _ClassVar[Role]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_ARGUMENT: _ClassVar[ErrorReason]
    ERROR_REASON_REFUSED: _ClassVar[ErrorReason]
    ERROR_REASON_STALE_TERM: _ClassVar[ErrorReason]
    ERROR_REASON_WRONG_ROLE: _ClassVar[ErrorReason]
    ERROR_REASON_FENCED: _ClassVar[ErrorReason]
    ERROR_REASON_NEEDS_RECLONE: _ClassVar[ErrorReason]
    ERROR_REASON_WAL_REMOVED: _ClassVar[ErrorReason]
    ERROR_REASON_MUST_REWIND: _ClassVar[ErrorReason]
    ERROR_REASON_CORRUPT_WAL: _ClassVar[ErrorReason]
    ERROR_REASON_ENGINE_ERROR: _ClassVar[ErrorReason]
    ERROR_REASON_DCS_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_LEASE_LOST: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
ROLE_UNSPECIFIED: Role
ROLE_PRIMARY: Role
ROLE_STANDBY: Role
ROLE_STOPPED: Role
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_ARGUMENT: ErrorReason
ERROR_REASON_REFUSED: ErrorReason
ERROR_REASON_STALE_TERM: ErrorReason
ERROR_REASON_WRONG_ROLE: ErrorReason
ERROR_REASON_FENCED: ErrorReason
ERROR_REASON_NEEDS_RECLONE: ErrorReason
ERROR_REASON_WAL_REMOVED: ErrorReason
ERROR_REASON_MUST_REWIND: ErrorReason
ERROR_REASON_CORRUPT_WAL: ErrorReason
ERROR_REASON_ENGINE_ERROR: ErrorReason
ERROR_REASON_DCS_UNAVAILABLE: ErrorReason
ERROR_REASON_LEASE_LOST: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason

class StandbyStatus(_message.Message):
    __slots__ = ("name", "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn", "send_lag_bytes", "flush_lag_bytes", "replay_lag_bytes", "write_lag_s", "flush_lag_s", "replay_lag_s", "sync_state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SENT_LSN_FIELD_NUMBER: _ClassVar[int]
    WRITE_LSN_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LSN_FIELD_NUMBER: _ClassVar[int]
    SEND_LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    WRITE_LAG_S_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LAG_S_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LAG_S_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    sent_lsn: int
    write_lsn: int
    flush_lsn: int
    replay_lsn: int
    send_lag_bytes: int
    flush_lag_bytes: int
    replay_lag_bytes: int
    write_lag_s: float
    flush_lag_s: float
    replay_lag_s: float
    sync_state: str
    def __init__(self, name: _Optional[str] = ..., sent_lsn: _Optional[int] = ..., write_lsn: _Optional[int] = ..., flush_lsn: _Optional[int] = ..., replay_lsn: _Optional[int] = ..., send_lag_bytes: _Optional[int] = ..., flush_lag_bytes: _Optional[int] = ..., replay_lag_bytes: _Optional[int] = ..., write_lag_s: _Optional[float] = ..., flush_lag_s: _Optional[float] = ..., replay_lag_s: _Optional[float] = ..., sync_state: _Optional[str] = ...) -> None: ...

class SlotStatus(_message.Message):
    __slots__ = ("name", "restart_lsn", "active", "lost", "retained_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESTART_LSN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    RETAINED_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    restart_lsn: int
    active: bool
    lost: bool
    retained_bytes: int
    def __init__(self, name: _Optional[str] = ..., restart_lsn: _Optional[int] = ..., active: _Optional[bool] = ..., lost: _Optional[bool] = ..., retained_bytes: _Optional[int] = ...) -> None: ...

class EngineStatus(_message.Message):
    __slots__ = ("role", "timeline", "term", "write_lsn", "flush_lsn", "replay_lsn", "receive_lsn", "upstream", "streaming", "fenced", "fence_reason", "needs_reclone", "standbys", "slots", "engine", "sync_standbys", "detail", "write_error", "write_error_since", "wal_repairs", "wal_repair")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    WRITE_LSN_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LSN_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_LSN_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    FENCE_REASON_FIELD_NUMBER: _ClassVar[int]
    NEEDS_RECLONE_FIELD_NUMBER: _ClassVar[int]
    STANDBYS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    SYNC_STANDBYS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_FIELD_NUMBER: _ClassVar[int]
    WRITE_ERROR_SINCE_FIELD_NUMBER: _ClassVar[int]
    WAL_REPAIRS_FIELD_NUMBER: _ClassVar[int]
    WAL_REPAIR_FIELD_NUMBER: _ClassVar[int]
    role: Role
    timeline: int
    term: int
    write_lsn: int
    flush_lsn: int
    replay_lsn: int
    receive_lsn: int
    upstream: str
    streaming: bool
    fenced: bool
    fence_reason: str
    needs_reclone: bool
    standbys: _containers.RepeatedCompositeFieldContainer[StandbyStatus]
    slots: _containers.RepeatedCompositeFieldContainer[SlotStatus]
    engine: str
    sync_standbys: str
    detail: str
    write_error: str
    write_error_since: float
    wal_repairs: int
    wal_repair: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ..., write_lsn: _Optional[int] = ..., flush_lsn: _Optional[int] = ..., replay_lsn: _Optional[int] = ..., receive_lsn: _Optional[int] = ..., upstream: _Optional[str] = ..., streaming: _Optional[bool] = ..., fenced: _Optional[bool] = ..., fence_reason: _Optional[str] = ..., needs_reclone: _Optional[bool] = ..., standbys: _Optional[_Iterable[_Union[StandbyStatus, _Mapping]]] = ..., slots: _Optional[_Iterable[_Union[SlotStatus, _Mapping]]] = ..., engine: _Optional[str] = ..., sync_standbys: _Optional[str] = ..., detail: _Optional[str] = ..., write_error: _Optional[str] = ..., write_error_since: _Optional[float] = ..., wal_repairs: _Optional[int] = ..., wal_repair: _Optional[str] = ...) -> None: ...
