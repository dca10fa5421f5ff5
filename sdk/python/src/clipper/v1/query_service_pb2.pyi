from clipper.common.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryRequest(_message.Message):
    __slots__ = ("application", "inputs", "version", "uid")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    application: str
    inputs: _data_pb2.Inputs
    version: str
    uid: str
    def __init__(self, application: _Optional[str] = ..., inputs: _Optional[_Union[_data_pb2.Inputs, _Mapping]] = ..., version: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("query_id", "output", "default", "default_explanation", "models", "confidence")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    query_id: int
    output: str
    default: bool
    default_explanation: str
    models: _containers.RepeatedScalarFieldContainer[str]
    confidence: float
    def __init__(self, query_id: _Optional[int] = ..., output: _Optional[str] = ..., default: _Optional[bool] = ..., default_explanation: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., confidence: _Optional[float] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("application", "inputs", "labels", "uid")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    application: str
    inputs: _data_pb2.Inputs
    labels: _containers.RepeatedScalarFieldContainer[str]
    uid: str
    def __init__(self, application: _Optional[str] = ..., inputs: _Optional[_Union[_data_pb2.Inputs, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., uid: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("accepted", "joined")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    joined: int
    def __init__(self, accepted: _Optional[int] = ..., joined: _Optional[int] = ...) -> None: ...

class QueryStreamRequest(_message.Message):
    __slots__ = ("queries", "cancelled")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[StreamedQuery]
    cancelled: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, queries: _Optional[_Iterable[_Union[StreamedQuery, _Mapping]]] = ..., cancelled: _Optional[_Iterable[int]] = ...) -> None: ...

class StreamedQuery(_message.Message):
    __slots__ = ("call_id", "request", "timeout_ms", "traceparent", "tracestate")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    request: QueryRequest
    timeout_ms: int
    traceparent: str
    tracestate: str
    def __init__(self, call_id: _Optional[int] = ..., request: _Optional[_Union[QueryRequest, _Mapping]] = ..., timeout_ms: _Optional[int] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class QueryStreamResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[StreamedAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[StreamedAnswer, _Mapping]]] = ...) -> None: ...

class StreamedAnswer(_message.Message):
    __slots__ = ("call_id", "results", "error_code", "error_message")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    error_code: int
    error_message: str
    def __init__(self, call_id: _Optional[int] = ..., results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...
