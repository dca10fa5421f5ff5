from clipper.common.v1 import data_pb2 as _data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LossKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOSS_KIND_UNSPECIFIED: _ClassVar[LossKind]
    LOSS_KIND_ZERO_ONE: _ClassVar[LossKind]
    LOSS_KIND_SQUARED: _ClassVar[LossKind]
    LOSS_KIND_ABSOLUTE: _ClassVar[LossKind]

class ReplicaState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_STATE_UNSPECIFIED: _ClassVar[ReplicaState]
    REPLICA_STATE_STARTING: _ClassVar[ReplicaState]
    REPLICA_STATE_READY: _ClassVar[ReplicaState]
    REPLICA_STATE_UNHEALTHY: _ClassVar[ReplicaState]
    REPLICA_STATE_FAILED: _ClassVar[ReplicaState]
    REPLICA_STATE_STOPPING: _ClassVar[ReplicaState]
LOSS_KIND_UNSPECIFIED: LossKind
LOSS_KIND_ZERO_ONE: LossKind
LOSS_KIND_SQUARED: LossKind
LOSS_KIND_ABSOLUTE: LossKind
REPLICA_STATE_UNSPECIFIED: ReplicaState
REPLICA_STATE_STARTING: ReplicaState
REPLICA_STATE_READY: ReplicaState
REPLICA_STATE_UNHEALTHY: ReplicaState
REPLICA_STATE_FAILED: ReplicaState
REPLICA_STATE_STOPPING: ReplicaState

class Application(_message.Message):
    __slots__ = ("name", "input_type", "default_output", "slo_micros", "linked_models", "description", "cache_enabled", "default_on_overload", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    SLO_MICROS_FIELD_NUMBER: _ClassVar[int]
    LINKED_MODELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ON_OVERLOAD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_type: _data_pb2.InputType
    default_output: str
    slo_micros: int
    linked_models: _containers.RepeatedScalarFieldContainer[str]
    description: str
    cache_enabled: bool
    default_on_overload: bool
    policy: SelectionPolicy
    def __init__(self, name: _Optional[str] = ..., input_type: _Optional[_Union[_data_pb2.InputType, str]] = ..., default_output: _Optional[str] = ..., slo_micros: _Optional[int] = ..., linked_models: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., cache_enabled: _Optional[bool] = ..., default_on_overload: _Optional[bool] = ..., policy: _Optional[_Union[SelectionPolicy, _Mapping]] = ...) -> None: ...

class SelectionPolicy(_message.Message):
    __slots__ = ("single", "split", "exp3", "exp4", "epsilon_greedy", "thompson", "loss", "loss_scale")
    SINGLE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    EXP3_FIELD_NUMBER: _ClassVar[int]
    EXP4_FIELD_NUMBER: _ClassVar[int]
    EPSILON_GREEDY_FIELD_NUMBER: _ClassVar[int]
    THOMPSON_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LOSS_SCALE_FIELD_NUMBER: _ClassVar[int]
    single: SinglePolicy
    split: SplitPolicy
    exp3: Exp3Policy
    exp4: Exp4Policy
    epsilon_greedy: EpsilonGreedyPolicy
    thompson: ThompsonPolicy
    loss: LossKind
    loss_scale: float
    def __init__(self, single: _Optional[_Union[SinglePolicy, _Mapping]] = ..., split: _Optional[_Union[SplitPolicy, _Mapping]] = ..., exp3: _Optional[_Union[Exp3Policy, _Mapping]] = ..., exp4: _Optional[_Union[Exp4Policy, _Mapping]] = ..., epsilon_greedy: _Optional[_Union[EpsilonGreedyPolicy, _Mapping]] = ..., thompson: _Optional[_Union[ThompsonPolicy, _Mapping]] = ..., loss: _Optional[_Union[LossKind, str]] = ..., loss_scale: _Optional[float] = ...) -> None: ...

class SinglePolicy(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SplitPolicy(_message.Message):
    __slots__ = ("weights",)
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.ScalarMap[str, float]
    def __init__(self, weights: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Exp3Policy(_message.Message):
    __slots__ = ("gamma",)
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    gamma: float
    def __init__(self, gamma: _Optional[float] = ...) -> None: ...

class Exp4Policy(_message.Message):
    __slots__ = ("eta",)
    ETA_FIELD_NUMBER: _ClassVar[int]
    eta: float
    def __init__(self, eta: _Optional[float] = ...) -> None: ...

class EpsilonGreedyPolicy(_message.Message):
    __slots__ = ("epsilon",)
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    epsilon: float
    def __init__(self, epsilon: _Optional[float] = ...) -> None: ...

class ThompsonPolicy(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "version", "input_type", "runtime", "max_batch_size", "labels", "desired_replicas", "created_at_ms", "batching", "resources")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    input_type: _data_pb2.InputType
    runtime: ModelRuntime
    max_batch_size: int
    labels: _containers.ScalarMap[str, str]
    desired_replicas: int
    created_at_ms: int
    batching: BatchingConfig
    resources: ModelResources
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., input_type: _Optional[_Union[_data_pb2.InputType, str]] = ..., runtime: _Optional[_Union[ModelRuntime, _Mapping]] = ..., max_batch_size: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., desired_replicas: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., batching: _Optional[_Union[BatchingConfig, _Mapping]] = ..., resources: _Optional[_Union[ModelResources, _Mapping]] = ...) -> None: ...

class ModelResources(_message.Message):
    __slots__ = ("requests", "limits")
    class RequestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.ScalarMap[str, str]
    limits: _containers.ScalarMap[str, str]
    def __init__(self, requests: _Optional[_Mapping[str, str]] = ..., limits: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BatchingConfig(_message.Message):
    __slots__ = ("max_wait_micros", "max_in_flight_per_replica", "fixed_size", "max_queue_length")
    MAX_WAIT_MICROS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_PER_REPLICA_FIELD_NUMBER: _ClassVar[int]
    FIXED_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    max_wait_micros: int
    max_in_flight_per_replica: int
    fixed_size: bool
    max_queue_length: int
    def __init__(self, max_wait_micros: _Optional[int] = ..., max_in_flight_per_replica: _Optional[int] = ..., fixed_size: _Optional[bool] = ..., max_queue_length: _Optional[int] = ...) -> None: ...

class ModelRuntime(_message.Message):
    __slots__ = ("python_closure", "command", "node_module", "java_class", "r_function")
    PYTHON_CLOSURE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    NODE_MODULE_FIELD_NUMBER: _ClassVar[int]
    JAVA_CLASS_FIELD_NUMBER: _ClassVar[int]
    R_FUNCTION_FIELD_NUMBER: _ClassVar[int]
    python_closure: PythonClosureRuntime
    command: CommandRuntime
    node_module: NodeModuleRuntime
    java_class: JavaClassRuntime
    r_function: RFunctionRuntime
    def __init__(self, python_closure: _Optional[_Union[PythonClosureRuntime, _Mapping]] = ..., command: _Optional[_Union[CommandRuntime, _Mapping]] = ..., node_module: _Optional[_Union[NodeModuleRuntime, _Mapping]] = ..., java_class: _Optional[_Union[JavaClassRuntime, _Mapping]] = ..., r_function: _Optional[_Union[RFunctionRuntime, _Mapping]] = ...) -> None: ...

class PythonClosureRuntime(_message.Message):
    __slots__ = ("artifact_digest", "python_version", "packages", "interpreter")
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    artifact_digest: str
    python_version: str
    packages: _containers.RepeatedScalarFieldContainer[str]
    interpreter: str
    def __init__(self, artifact_digest: _Optional[str] = ..., python_version: _Optional[str] = ..., packages: _Optional[_Iterable[str]] = ..., interpreter: _Optional[str] = ...) -> None: ...

class CommandRuntime(_message.Message):
    __slots__ = ("argv", "env", "working_dir")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARGV_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    argv: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    working_dir: str
    def __init__(self, argv: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., working_dir: _Optional[str] = ...) -> None: ...

class NodeModuleRuntime(_message.Message):
    __slots__ = ("module_path",)
    MODULE_PATH_FIELD_NUMBER: _ClassVar[int]
    module_path: str
    def __init__(self, module_path: _Optional[str] = ...) -> None: ...

class JavaClassRuntime(_message.Message):
    __slots__ = ("jar_digest", "class_name", "jvm_options")
    JAR_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    JVM_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    jar_digest: str
    class_name: str
    jvm_options: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jar_digest: _Optional[str] = ..., class_name: _Optional[str] = ..., jvm_options: _Optional[_Iterable[str]] = ...) -> None: ...

class RFunctionRuntime(_message.Message):
    __slots__ = ("artifact_digest", "format", "packages")
    ARTIFACT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    artifact_digest: str
    format: str
    packages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, artifact_digest: _Optional[str] = ..., format: _Optional[str] = ..., packages: _Optional[_Iterable[str]] = ...) -> None: ...

class CurrentVersion(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Replica(_message.Message):
    __slots__ = ("id", "model_name", "model_version", "endpoint", "state", "restarts", "message", "started_at_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_name: str
    model_version: str
    endpoint: str
    state: ReplicaState
    restarts: int
    message: str
    started_at_ms: int
    def __init__(self, id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., endpoint: _Optional[str] = ..., state: _Optional[_Union[ReplicaState, str]] = ..., restarts: _Optional[int] = ..., message: _Optional[str] = ..., started_at_ms: _Optional[int] = ...) -> None: ...

class ReplicaSet(_message.Message):
    __slots__ = ("model_name", "model_version", "replicas")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    replicas: _containers.RepeatedCompositeFieldContainer[Replica]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[Replica, _Mapping]]] = ...) -> None: ...

class ConfigSnapshot(_message.Message):
    __slots__ = ("revision", "applications", "models", "current_versions", "replica_sets")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_SETS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    current_versions: _containers.RepeatedCompositeFieldContainer[CurrentVersion]
    replica_sets: _containers.RepeatedCompositeFieldContainer[ReplicaSet]
    def __init__(self, revision: _Optional[int] = ..., applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., current_versions: _Optional[_Iterable[_Union[CurrentVersion, _Mapping]]] = ..., replica_sets: _Optional[_Iterable[_Union[ReplicaSet, _Mapping]]] = ...) -> None: ...

class ModelVersionKey(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("revision", "application_upserted", "application_deleted", "model_upserted", "model_deleted", "current_version_set", "current_version_cleared", "replicas_reported")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_DELETED_FIELD_NUMBER: _ClassVar[int]
    MODEL_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_DELETED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_SET_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_CLEARED_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_REPORTED_FIELD_NUMBER: _ClassVar[int]
    revision: int
    application_upserted: Application
    application_deleted: str
    model_upserted: Model
    model_deleted: ModelVersionKey
    current_version_set: CurrentVersion
    current_version_cleared: str
    replicas_reported: ReplicaSet
    def __init__(self, revision: _Optional[int] = ..., application_upserted: _Optional[_Union[Application, _Mapping]] = ..., application_deleted: _Optional[str] = ..., model_upserted: _Optional[_Union[Model, _Mapping]] = ..., model_deleted: _Optional[_Union[ModelVersionKey, _Mapping]] = ..., current_version_set: _Optional[_Union[CurrentVersion, _Mapping]] = ..., current_version_cleared: _Optional[str] = ..., replicas_reported: _Optional[_Union[ReplicaSet, _Mapping]] = ...) -> None: ...
