from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StandbyMessage(_message.Message):
    __slots__ = ("start", "feedback")
    START_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    start: StartReplication
    feedback: Feedback
    def __init__(self, start: _Optional[_Union[StartReplication, _Mapping]] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...

class StartReplication(_message.Message):
    __slots__ = ("standby_name", "start_lsn", "timeline", "term")
    STANDBY_NAME_FIELD_NUMBER: _ClassVar[int]
    START_LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    standby_name: str
    start_lsn: int
    timeline: int
    term: int
    def __init__(self, standby_name: _Optional[str] = ..., start_lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("write_lsn", "flush_lsn", "apply_lsn", "sent_at")
    WRITE_LSN_FIELD_NUMBER: _ClassVar[int]
    FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    APPLY_LSN_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    write_lsn: int
    flush_lsn: int
    apply_lsn: int
    sent_at: float
    def __init__(self, write_lsn: _Optional[int] = ..., flush_lsn: _Optional[int] = ..., apply_lsn: _Optional[int] = ..., sent_at: _Optional[float] = ...) -> None: ...

class WalMessage(_message.Message):
    __slots__ = ("chunk", "keepalive")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    chunk: WalChunk
    keepalive: Keepalive
    def __init__(self, chunk: _Optional[_Union[WalChunk, _Mapping]] = ..., keepalive: _Optional[_Union[Keepalive, _Mapping]] = ...) -> None: ...

class WalChunk(_message.Message):
    __slots__ = ("start_lsn", "data", "primary_flush_lsn", "timeline", "term")
    START_LSN_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    start_lsn: int
    data: bytes
    primary_flush_lsn: int
    timeline: int
    term: int
    def __init__(self, start_lsn: _Optional[int] = ..., data: _Optional[bytes] = ..., primary_flush_lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ...) -> None: ...

class Keepalive(_message.Message):
    __slots__ = ("primary_write_lsn", "primary_flush_lsn", "timeline", "term", "primary_time")
    PRIMARY_WRITE_LSN_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FLUSH_LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_TIME_FIELD_NUMBER: _ClassVar[int]
    primary_write_lsn: int
    primary_flush_lsn: int
    timeline: int
    term: int
    primary_time: float
    def __init__(self, primary_write_lsn: _Optional[int] = ..., primary_flush_lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., term: _Optional[int] = ..., primary_time: _Optional[float] = ...) -> None: ...

class TimelineHistoryRequest(_message.Message):
    __slots__ = ("timeline",)
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    timeline: int
    def __init__(self, timeline: _Optional[int] = ...) -> None: ...

class TimelineHistoryEntry(_message.Message):
    __slots__ = ("timeline", "switch_lsn", "reason")
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    SWITCH_LSN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    timeline: int
    switch_lsn: int
    reason: str
    def __init__(self, timeline: _Optional[int] = ..., switch_lsn: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TimelineHistoryReply(_message.Message):
    __slots__ = ("current_timeline", "entries")
    CURRENT_TIMELINE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    current_timeline: int
    entries: _containers.RepeatedCompositeFieldContainer[TimelineHistoryEntry]
    def __init__(self, current_timeline: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[TimelineHistoryEntry, _Mapping]]] = ...) -> None: ...

class BaseBackupRequest(_message.Message):
    __slots__ = ("standby_name",)
    STANDBY_NAME_FIELD_NUMBER: _ClassVar[int]
    standby_name: str
    def __init__(self, standby_name: _Optional[str] = ...) -> None: ...

class BaseBackupChunk(_message.Message):
    __slots__ = ("checkpoint_lsn", "timeline", "data", "last", "term")
    CHECKPOINT_LSN_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    checkpoint_lsn: int
    timeline: int
    data: bytes
    last: bool
    term: int
    def __init__(self, checkpoint_lsn: _Optional[int] = ..., timeline: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., term: _Optional[int] = ...) -> None: ...
