from clipper.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeployStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPLOY_STAGE_UNSPECIFIED: _ClassVar[DeployStage]
    DEPLOY_STAGE_REGISTERED: _ClassVar[DeployStage]
    DEPLOY_STAGE_STARTING: _ClassVar[DeployStage]
    DEPLOY_STAGE_READY: _ClassVar[DeployStage]
DEPLOY_STAGE_UNSPECIFIED: DeployStage
DEPLOY_STAGE_REGISTERED: DeployStage
DEPLOY_STAGE_STARTING: DeployStage
DEPLOY_STAGE_READY: DeployStage

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ArtifactHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ArtifactHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ArtifactHeader(_message.Message):
    __slots__ = ("size_bytes", "sha256")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256: str
    def __init__(self, size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadArtifactResponse(_message.Message):
    __slots__ = ("digest", "size_bytes")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size_bytes: int
    def __init__(self, digest: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class DeployModelRequest(_message.Message):
    __slots__ = ("model", "set_current", "timeout_seconds")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SET_CURRENT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    set_current: bool
    timeout_seconds: int
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ..., set_current: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class DeployModelResponse(_message.Message):
    __slots__ = ("stage", "message", "ready_replicas", "desired_replicas", "replicas")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    stage: DeployStage
    message: str
    ready_replicas: int
    desired_replicas: int
    replicas: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Replica]
    def __init__(self, stage: _Optional[_Union[DeployStage, str]] = ..., message: _Optional[str] = ..., ready_replicas: _Optional[int] = ..., desired_replicas: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[_resources_pb2.Replica, _Mapping]]] = ...) -> None: ...

class ScaleModelRequest(_message.Message):
    __slots__ = ("name", "version", "replicas", "timeout_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    replicas: int
    timeout_seconds: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., replicas: _Optional[int] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class ScaleModelResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Replica]
    def __init__(self, replicas: _Optional[_Iterable[_Union[_resources_pb2.Replica, _Mapping]]] = ...) -> None: ...

class StopModelRequest(_message.Message):
    __slots__ = ("name", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[str]] = ...) -> None: ...

class StopModelResponse(_message.Message):
    __slots__ = ("stopped_replicas",)
    STOPPED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    stopped_replicas: int
    def __init__(self, stopped_replicas: _Optional[int] = ...) -> None: ...

class ListModelReplicasRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class ListModelReplicasResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Replica]
    def __init__(self, replicas: _Optional[_Iterable[_Union[_resources_pb2.Replica, _Mapping]]] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "replica_id", "tail_lines")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    replica_id: str
    tail_lines: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., replica_id: _Optional[str] = ..., tail_lines: _Optional[int] = ...) -> None: ...

class ReplicaLog(_message.Message):
    __slots__ = ("replica_id", "lines")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, replica_id: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ...) -> None: ...

class GetLogsResponse(_message.Message):
    __slots__ = ("logs",)
    LOGS_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[ReplicaLog]
    def __init__(self, logs: _Optional[_Iterable[_Union[ReplicaLog, _Mapping]]] = ...) -> None: ...
