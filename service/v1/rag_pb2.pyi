from google.protobuf import struct_pb2 as _struct_pb2
from lamina.service.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnswerRequest(_message.Message):
    __slots__ = ("search", "generator", "context_tokens", "max_new_tokens")
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    search: _search_pb2.SearchRequest
    generator: str
    context_tokens: int
    max_new_tokens: int
    def __init__(self, search: _Optional[_Union[_search_pb2.SearchRequest, _Mapping]] = ..., generator: _Optional[str] = ..., context_tokens: _Optional[int] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("number", "chunk_id", "parent", "start", "end", "score", "source", "page", "section")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    number: int
    chunk_id: str
    parent: str
    start: int
    end: int
    score: float
    source: str
    page: int
    section: str
    def __init__(self, number: _Optional[int] = ..., chunk_id: _Optional[str] = ..., parent: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., page: _Optional[int] = ..., section: _Optional[str] = ...) -> None: ...

class AnswerCitations(_message.Message):
    __slots__ = ("citations", "context")
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    context: str
    def __init__(self, citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., context: _Optional[str] = ...) -> None: ...

class AnswerDone(_message.Message):
    __slots__ = ("answer", "error", "timings", "stats", "explain")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    answer: str
    error: str
    timings: _containers.ScalarMap[str, float]
    stats: _struct_pb2.Struct
    explain: _struct_pb2.Struct
    def __init__(self, answer: _Optional[str] = ..., error: _Optional[str] = ..., timings: _Optional[_Mapping[str, float]] = ..., stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., explain: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AnswerResponse(_message.Message):
    __slots__ = ("citations", "token", "done", "time")
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    citations: AnswerCitations
    token: str
    done: AnswerDone
    time: float
    def __init__(self, citations: _Optional[_Union[AnswerCitations, _Mapping]] = ..., token: _Optional[str] = ..., done: _Optional[_Union[AnswerDone, _Mapping]] = ..., time: _Optional[float] = ...) -> None: ...
