from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommitLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMIT_DEFAULT: _ClassVar[CommitLevel]
    COMMIT_OFF: _ClassVar[CommitLevel]
    COMMIT_LOCAL: _ClassVar[CommitLevel]
    COMMIT_REMOTE_WRITE: _ClassVar[CommitLevel]
    COMMIT_ON: _ClassVar[CommitLevel]
    COMMIT_REMOTE_APPLY: _ClassVar[CommitLevel]
COMMIT_DEFAULT: CommitLevel
COMMIT_OFF: CommitLevel
COMMIT_LOCAL: CommitLevel
COMMIT_REMOTE_WRITE: CommitLevel
COMMIT_ON: CommitLevel
COMMIT_REMOTE_APPLY: CommitLevel

class PutRequest(_message.Message):
    __slots__ = ("key", "value", "level")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    level: CommitLevel
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., level: _Optional[_Union[CommitLevel, str]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("key", "level")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    level: CommitLevel
    def __init__(self, key: _Optional[bytes] = ..., level: _Optional[_Union[CommitLevel, str]] = ...) -> None: ...

class WriteOp(_message.Message):
    __slots__ = ("key", "value", "delete")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    delete: bool
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., delete: _Optional[bool] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("ops", "level")
    OPS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[WriteOp]
    level: CommitLevel
    def __init__(self, ops: _Optional[_Iterable[_Union[WriteOp, _Mapping]]] = ..., level: _Optional[_Union[CommitLevel, str]] = ...) -> None: ...

class WriteReply(_message.Message):
    __slots__ = ("lsn", "timeline", "term")
    LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    timeline: int
    term: int
    def __init__(self, lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("id", "put", "delete", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    put: PutRequest
    delete: DeleteRequest
    batch: BatchRequest
    def __init__(self, id: _Optional[int] = ..., put: _Optional[_Union[PutRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., batch: _Optional[_Union[BatchRequest, _Mapping]] = ...) -> None: ...

class WriteStreamReply(_message.Message):
    __slots__ = ("id", "reply")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    id: int
    reply: WriteReply
    def __init__(self, id: _Optional[int] = ..., reply: _Optional[_Union[WriteReply, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    def __init__(self, key: _Optional[bytes] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("found", "value", "replay_lsn", "lag_bytes", "lag_s", "role")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_LSN_FIELD_NUMBER: _ClassVar[int]
    LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAG_S_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    replay_lsn: int
    lag_bytes: int
    lag_s: float
    role: str
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., replay_lsn: _Optional[int] = ..., lag_bytes: _Optional[int] = ..., lag_s: _Optional[float] = ..., role: _Optional[str] = ...) -> None: ...
