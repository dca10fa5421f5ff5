from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InputType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_TYPE_UNSPECIFIED: _ClassVar[InputType]
    INPUT_TYPE_BYTES: _ClassVar[InputType]
    INPUT_TYPE_INTS: _ClassVar[InputType]
    INPUT_TYPE_FLOATS: _ClassVar[InputType]
    INPUT_TYPE_DOUBLES: _ClassVar[InputType]
    INPUT_TYPE_STRINGS: _ClassVar[InputType]
INPUT_TYPE_UNSPECIFIED: InputType
INPUT_TYPE_BYTES: InputType
INPUT_TYPE_INTS: InputType
INPUT_TYPE_FLOATS: InputType
INPUT_TYPE_DOUBLES: InputType
INPUT_TYPE_STRINGS: InputType

class Inputs(_message.Message):
    __slots__ = ("type", "lengths", "ints", "floats", "doubles", "bytes", "strings")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    INTS_FIELD_NUMBER: _ClassVar[int]
    FLOATS_FIELD_NUMBER: _ClassVar[int]
    DOUBLES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    STRINGS_FIELD_NUMBER: _ClassVar[int]
    type: InputType
    lengths: _containers.RepeatedScalarFieldContainer[int]
    ints: _containers.RepeatedScalarFieldContainer[int]
    floats: _containers.RepeatedScalarFieldContainer[float]
    doubles: _containers.RepeatedScalarFieldContainer[float]
    bytes: _containers.RepeatedScalarFieldContainer[bytes]
    strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[_Union[InputType, str]] = ..., lengths: _Optional[_Iterable[int]] = ..., ints: _Optional[_Iterable[int]] = ..., floats: _Optional[_Iterable[float]] = ..., doubles: _Optional[_Iterable[float]] = ..., bytes: _Optional[_Iterable[bytes]] = ..., strings: _Optional[_Iterable[str]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("value", "error")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    value: str
    error: str
    def __init__(self, value: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
