from clipper.common.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Input(_message.Message):
    __slots__ = ("bytes", "ints", "floats", "doubles", "string")
    BYTES_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    DOUBLES_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    bytes: bytes
    ints: IntVector
    floats: FloatVector
    doubles: DoubleVector
    string: str
    def __init__(self, bytes: _Optional[bytes] = ..., ints: _Optional[_Union[IntVector, _Mapping]] = ..., floats: _Optional[_Union[FloatVector, _Mapping]] = ..., doubles: _Optional[_Union[DoubleVector, _Mapping]] = ..., string: _Optional[str] = ...) -> None: ...

class IntVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class FloatVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class DoubleVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("application", "input", "version", "uid")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    application: str
    input: Input
    version: str
    uid: str
    def __init__(self, application: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., version: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
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

class PredictResponse(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
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

class PredictBatchResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("application", "input", "label", "uid")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    application: str
    input: Input
    label: str
    uid: str
    def __init__(self, application: _Optional[str] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., label: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...
