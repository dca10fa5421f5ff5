from clipper.common.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("inputs", "batch_id")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    inputs: _data_pb2.Inputs
    batch_id: int
    def __init__(self, inputs: _Optional[_Union[_data_pb2.Inputs, _Mapping]] = ..., batch_id: _Optional[int] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[_data_pb2.Output]
    def __init__(self, outputs: _Optional[_Iterable[_Union[_data_pb2.Output, _Mapping]]] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("batch_id", "inputs", "traceparent", "tracestate")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    inputs: _data_pb2.Inputs
    traceparent: str
    tracestate: str
    def __init__(self, batch_id: _Optional[int] = ..., inputs: _Optional[_Union[_data_pb2.Inputs, _Mapping]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("batch_id", "outputs", "error_code", "error_message")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    outputs: _containers.RepeatedCompositeFieldContainer[_data_pb2.Output]
    error_code: int
    error_message: str
    def __init__(self, batch_id: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[_data_pb2.Output, _Mapping]]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class GetMetadataRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMetadataResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "input_type", "runtime", "max_batch_size")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    input_type: _data_pb2.InputType
    runtime: str
    max_batch_size: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., input_type: _Optional[_Union[_data_pb2.InputType, str]] = ..., runtime: _Optional[str] = ..., max_batch_size: _Optional[int] = ...) -> None: ...

class CheckReadinessRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckReadinessResponse(_message.Message):
    __slots__ = ("ready", "message")
    READY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    message: str
    def __init__(self, ready: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
