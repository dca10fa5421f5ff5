from clipper.common.v1 import data_pb2 as _data_pb2
from clipper.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateApplicationRequest(_message.Message):
    __slots__ = ("name", "input_type", "default_output", "slo_micros", "description", "cache_enabled", "default_on_overload", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SLO_MICROS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ON_OVERLOAD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_type: _data_pb2.InputType
    default_output: str
    slo_micros: int
    description: str
    cache_enabled: bool
    default_on_overload: bool
    policy: _resources_pb2.SelectionPolicy
    def __init__(self, name: _Optional[str] = ..., input_type: _Optional[_Union[_data_pb2.InputType, str]] = ..., default_output: _Optional[str] = ..., slo_micros: _Optional[int] = ..., description: _Optional[str] = ..., cache_enabled: _Optional[bool] = ..., default_on_overload: _Optional[bool] = ..., policy: _Optional[_Union[_resources_pb2.SelectionPolicy, _Mapping]] = ...) -> None: ...

class CreateApplicationResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _resources_pb2.Application
    def __init__(self, application: _Optional[_Union[_resources_pb2.Application, _Mapping]] = ...) -> None: ...

class GetApplicationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetApplicationResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _resources_pb2.Application
    def __init__(self, application: _Optional[_Union[_resources_pb2.Application, _Mapping]] = ...) -> None: ...

class ListApplicationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListApplicationsResponse(_message.Message):
    __slots__ = ("applications",)
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Application]
    def __init__(self, applications: _Optional[_Iterable[_Union[_resources_pb2.Application, _Mapping]]] = ...) -> None: ...

class UpdateApplicationRequest(_message.Message):
    __slots__ = ("name", "default_output", "slo_micros", "description", "cache_enabled", "default_on_overload", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SLO_MICROS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ON_OVERLOAD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    default_output: str
    slo_micros: int
    description: str
    cache_enabled: bool
    default_on_overload: bool
    policy: _resources_pb2.SelectionPolicy
    def __init__(self, name: _Optional[str] = ..., default_output: _Optional[str] = ..., slo_micros: _Optional[int] = ..., description: _Optional[str] = ..., cache_enabled: _Optional[bool] = ..., default_on_overload: _Optional[bool] = ..., policy: _Optional[_Union[_resources_pb2.SelectionPolicy, _Mapping]] = ...) -> None: ...

class UpdateApplicationResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _resources_pb2.Application
    def __init__(self, application: _Optional[_Union[_resources_pb2.Application, _Mapping]] = ...) -> None: ...

class DeleteApplicationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteApplicationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("model", "set_current")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SET_CURRENT_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    set_current: bool
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ..., set_current: _Optional[bool] = ...) -> None: ...

class CreateModelResponse(_message.Message):
    __slots__ = ("model", "current_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    current_version: str
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ..., current_version: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model", "current_version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    current_version: str
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ..., current_version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "current_versions")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Model]
    current_versions: _containers.RepeatedCompositeFieldContainer[_resources_pb2.CurrentVersion]
    def __init__(self, models: _Optional[_Iterable[_Union[_resources_pb2.Model, _Mapping]]] = ..., current_versions: _Optional[_Iterable[_Union[_resources_pb2.CurrentVersion, _Mapping]]] = ...) -> None: ...

class UpdateModelRequest(_message.Message):
    __slots__ = ("name", "version", "desired_replicas", "max_batch_size", "labels", "replace_labels", "batching")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_LABELS_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    desired_replicas: int
    max_batch_size: int
    labels: _containers.ScalarMap[str, str]
    replace_labels: bool
    batching: _resources_pb2.BatchingConfig
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., desired_replicas: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., replace_labels: _Optional[bool] = ..., batching: _Optional[_Union[_resources_pb2.BatchingConfig, _Mapping]] = ...) -> None: ...

class UpdateModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _resources_pb2.Model
    def __init__(self, model: _Optional[_Union[_resources_pb2.Model, _Mapping]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.RepeatedCompositeFieldContainer[_resources_pb2.ModelVersionKey]
    def __init__(self, deleted: _Optional[_Iterable[_Union[_resources_pb2.ModelVersionKey, _Mapping]]] = ...) -> None: ...

class SetModelVersionRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class SetModelVersionResponse(_message.Message):
    __slots__ = ("previous_version",)
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    def __init__(self, previous_version: _Optional[str] = ...) -> None: ...

class LinkModelRequest(_message.Message):
    __slots__ = ("application", "model_name")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    application: str
    model_name: str
    def __init__(self, application: _Optional[str] = ..., model_name: _Optional[str] = ...) -> None: ...

class LinkModelResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _resources_pb2.Application
    def __init__(self, application: _Optional[_Union[_resources_pb2.Application, _Mapping]] = ...) -> None: ...

class UnlinkModelRequest(_message.Message):
    __slots__ = ("application", "model_name")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    application: str
    model_name: str
    def __init__(self, application: _Optional[str] = ..., model_name: _Optional[str] = ...) -> None: ...

class UnlinkModelResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: _resources_pb2.Application
    def __init__(self, application: _Optional[_Union[_resources_pb2.Application, _Mapping]] = ...) -> None: ...

class ReportReplicasRequest(_message.Message):
    __slots__ = ("replica_set",)
    REPLICA_SET_FIELD_NUMBER: _ClassVar[int]
    replica_set: _resources_pb2.ReplicaSet
    def __init__(self, replica_set: _Optional[_Union[_resources_pb2.ReplicaSet, _Mapping]] = ...) -> None: ...

class ReportReplicasResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListReplicasRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class ListReplicasResponse(_message.Message):
    __slots__ = ("replica_sets",)
    REPLICA_SETS_FIELD_NUMBER: _ClassVar[int]
    replica_sets: _containers.RepeatedCompositeFieldContainer[_resources_pb2.ReplicaSet]
    def __init__(self, replica_sets: _Optional[_Iterable[_Union[_resources_pb2.ReplicaSet, _Mapping]]] = ...) -> None: ...

class WatchConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchConfigResponse(_message.Message):
    __slots__ = ("snapshot", "change")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    snapshot: _resources_pb2.ConfigSnapshot
    change: _resources_pb2.ConfigChange
    def __init__(self, snapshot: _Optional[_Union[_resources_pb2.ConfigSnapshot, _Mapping]] = ..., change: _Optional[_Union[_resources_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class GetPolicyStateRequest(_message.Message):
    __slots__ = ("application", "uid")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    application: str
    uid: str
    def __init__(self, application: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class GetPolicyStateResponse(_message.Message):
    __slots__ = ("version", "state")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: bytes
    def __init__(self, version: _Optional[int] = ..., state: _Optional[bytes] = ...) -> None: ...

class UpdatePolicyStateRequest(_message.Message):
    __slots__ = ("application", "uid", "expected_version", "state")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    application: str
    uid: str
    expected_version: int
    state: bytes
    def __init__(self, application: _Optional[str] = ..., uid: _Optional[str] = ..., expected_version: _Optional[int] = ..., state: _Optional[bytes] = ...) -> None: ...

class UpdatePolicyStateResponse(_message.Message):
    __slots__ = ("applied", "version", "state")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    version: int
    state: bytes
    def __init__(self, applied: _Optional[bool] = ..., version: _Optional[int] = ..., state: _Optional[bytes] = ...) -> None: ...
