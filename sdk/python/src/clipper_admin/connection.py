"""ClipperConnection: Clipper's admin API over the registry's ManagementService
and the container-manager's ContainerManagerService."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipper.v1 import (
    container_manager_service_pb2 as cm_pb2,
)
from clipper.v1 import (
    container_manager_service_pb2_grpc as cm_grpc,
)
from clipper.v1 import (
    management_service_pb2 as mgmt_pb2,
)
from clipper.v1 import (
    management_service_pb2_grpc as mgmt_grpc,
)
from clipper.v1 import (
    resources_pb2,
)
from clipper_runtime.input_types import input_type_name, parse_input_type

from .container_manager import ContainerManager
from .exceptions import ClipperException, from_rpc_error
from .security import ChannelSecurity

log = logging.getLogger("clipper_admin")

ARTIFACT_CHUNK_BYTES = 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
# Waiting for replicas is the slow part of a deploy; bound it anyway.
_DEFAULT_DEPLOY_DEADLINE_SECONDS = 600.0

Runtime = (
    resources_pb2.ModelRuntime
    | resources_pb2.PythonClosureRuntime
    | resources_pb2.CommandRuntime
    | resources_pb2.NodeModuleRuntime
    | resources_pb2.JavaClassRuntime
    | resources_pb2.RFunctionRuntime
    | Sequence[str]
)


def model_runtime(runtime: Any) -> resources_pb2.ModelRuntime:
    """A ModelRuntime from any of its kinds, or an argv list for a command."""
    if isinstance(runtime, resources_pb2.ModelRuntime):
        return runtime
    if isinstance(runtime, resources_pb2.PythonClosureRuntime):
        return resources_pb2.ModelRuntime(python_closure=runtime)
    if isinstance(runtime, resources_pb2.CommandRuntime):
        return resources_pb2.ModelRuntime(command=runtime)
    if isinstance(runtime, resources_pb2.NodeModuleRuntime):
        return resources_pb2.ModelRuntime(node_module=runtime)
    if isinstance(runtime, resources_pb2.JavaClassRuntime):
        return resources_pb2.ModelRuntime(java_class=runtime)
    if isinstance(runtime, resources_pb2.RFunctionRuntime):
        return resources_pb2.ModelRuntime(r_function=runtime)
    if isinstance(runtime, (list, tuple)) and runtime and all(isinstance(a, str) for a in runtime):
        return resources_pb2.ModelRuntime(command=resources_pb2.CommandRuntime(argv=list(runtime)))
    raise ClipperException(
        f"runtime must be a ModelRuntime, PythonClosureRuntime, CommandRuntime, "
        f"NodeModuleRuntime, JavaClassRuntime, RFunctionRuntime or a non-empty argv list, got {type(runtime).__name__}"
    )


_RUNNER_LINE = re.compile(r"\sstderr (?:closure_runner|file_runner): (.+)$")


def runner_reason(message: str) -> str | None:
    """The last reason an SDK runner gave for exiting ("closure_runner: ..." on
    its stderr) among the replica log lines quoted in a failed deploy's message."""
    reasons = [match.group(1) for line in message.splitlines() if (match := _RUNNER_LINE.search(line))]
    return reasons[-1] if reasons else None


def application_dict(app: resources_pb2.Application) -> dict[str, Any]:
    return {
        "name": app.name,
        "input_type": input_type_name(app.input_type),
        "default_output": app.default_output,
        "latency_slo_micros": app.slo_micros,
        "linked_models": list(app.linked_models),
        "description": app.description,
        "selection_policy": app.policy.WhichOneof("kind") or "single",
    }


_POLICY_KINDS = ("single", "split", "exp3", "exp4", "epsilon_greedy", "thompson")
_LOSSES = {
    "zero_one": resources_pb2.LOSS_KIND_ZERO_ONE,
    "squared": resources_pb2.LOSS_KIND_SQUARED,
    "absolute": resources_pb2.LOSS_KIND_ABSOLUTE,
}


def selection_policy(
    kind: str,
    *,
    weights: dict[str, float] | None = None,
    gamma: float | None = None,
    eta: float | None = None,
    epsilon: float | None = None,
    loss: str = "zero_one",
    loss_scale: float | None = None,
) -> resources_pb2.SelectionPolicy:
    """A SelectionPolicy message (docs/policies.md). Split weights name linked
    models or "model:version" (a canary between versions of one model)."""
    if kind not in _POLICY_KINDS:
        raise ClipperException(f"policy must be one of {', '.join(_POLICY_KINDS)}, got {kind!r}")
    if loss not in _LOSSES:
        raise ClipperException(f"loss must be one of {', '.join(_LOSSES)}, got {loss!r}")
    given = {"weights": weights, "gamma": gamma, "eta": eta, "epsilon": epsilon}
    owner = {"weights": "split", "gamma": "exp3", "eta": "exp4", "epsilon": "epsilon_greedy"}
    for name, value in given.items():
        if value is not None and owner[name] != kind:
            raise ClipperException(f"{name} applies to the {owner[name]} policy only")
    policy = resources_pb2.SelectionPolicy(loss=_LOSSES[loss], loss_scale=float(loss_scale or 0))
    if kind == "single":
        policy.single.SetInParent()
    elif kind == "split":
        if not weights:
            raise ClipperException("the split policy needs weights, e.g. {'digits:1': 0.9, 'digits:2': 0.1}")
        policy.split.weights.update({key: float(value) for key, value in weights.items()})
    elif kind == "exp3":
        policy.exp3.gamma = float(gamma or 0)
    elif kind == "exp4":
        policy.exp4.eta = float(eta or 0)
    elif kind == "epsilon_greedy":
        policy.epsilon_greedy.epsilon = float(epsilon or 0)
    else:
        policy.thompson.SetInParent()
    return policy


def model_dict(model: resources_pb2.Model, current_version: str | None) -> dict[str, Any]:
    return {
        "model_name": model.name,
        "model_version": model.version,
        "is_current_version": model.version == current_version,
        "input_type": input_type_name(model.input_type),
        "labels": dict(model.labels),
        "desired_replicas": model.desired_replicas,
        "batch_size": model.max_batch_size if model.max_batch_size > 0 else -1,
        "runtime": model.runtime.WhichOneof("kind"),
        "created_at_ms": model.created_at_ms,
    }


def replica_dict(replica: resources_pb2.Replica) -> dict[str, Any]:
    return {
        "model_name": replica.model_name,
        "model_version": replica.model_version,
        "model_replica_id": replica.id,
        "endpoint": replica.endpoint,
        "state": resources_pb2.ReplicaState.Name(replica.state).removeprefix("REPLICA_STATE_"),
        "restarts": replica.restarts,
        "message": replica.message,
        "started_at_ms": replica.started_at_ms,
    }


class ClipperConnection:
    """Clipper's admin API. `start_clipper()` (or `connect()` to a running
    Clipper) must come first. Every failure raises ClipperException with the
    server's message.

    With authentication on, pass `token=` (or set CLIPPER_TOKEN); with TLS,
    `tls_ca=` and for mutual TLS `tls_cert=` and `tls_key=` (or CLIPPER_TLS_*)."""

    def __init__(
        self,
        container_manager: ContainerManager,
        rpc_timeout_seconds: float = 30.0,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self.cm = container_manager
        self._security = ChannelSecurity(token=token, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
        self.rpc_timeout_seconds = rpc_timeout_seconds
        self.connected = False
        self._channels: list[grpc.Channel] = []
        self._management: mgmt_grpc.ManagementServiceStub | None = None
        self._containers: cm_grpc.ContainerManagerServiceStub | None = None

    # -- lifecycle -------------------------------------------------------

    def start_clipper(self) -> None:
        """Starts Clipper with the container manager and connects to it."""
        self.cm.start_clipper()
        self.connect()
        log.info("Clipper is running")

    def connect(self, timeout_seconds: float = 10.0) -> None:
        """Connects to a running Clipper: the registry must answer its health check."""
        self._close_channels()
        registry = self._security.channel(self.cm.registry_address, _CHANNEL_OPTIONS)
        containers = self._security.channel(self.cm.container_manager_address, _CHANNEL_OPTIONS)
        self._channels = [registry, containers]
        try:
            status = (
                health_pb2_grpc.HealthStub(registry)
                .Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_seconds, wait_for_ready=True)
                .status
            )
        except grpc.RpcError as error:
            self._close_channels()
            raise ClipperException(
                f"cannot reach the Clipper registry at {self.cm.registry_address}: {from_rpc_error(error)}",
                error.code(),
            ) from error
        if status != health_pb2.HealthCheckResponse.SERVING:
            self._close_channels()
            raise ClipperException(
                f"the Clipper registry at {self.cm.registry_address} is "
                f"{health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
            )
        self._management = mgmt_grpc.ManagementServiceStub(registry)
        self._containers = cm_grpc.ContainerManagerServiceStub(containers)
        self.connected = True
        log.info("connected to Clipper at %s", self.cm.registry_address)

    def stop_all(self, graceful: bool = True, remove_data: bool = False) -> None:
        """Stops Clipper and every model replica (the container manager's `stop_all`).

        What was registered is kept (LocalContainerManager: in its data
        directory), so the next start_clipper() has the same applications,
        models and links, and starts the models' replicas again; registering
        an identical application or deploying an identical model version again
        then succeeds. `remove_data=True` deletes that state as well, for a
        clean start."""
        self._close_channels()
        self.connected = False
        if remove_data:
            self.cm.stop_all(remove_data=True)
        else:
            self.cm.stop_all()
        log.info("Clipper stopped" + (" and its state removed" if remove_data else ""))

    def close(self) -> None:
        self._close_channels()
        self.connected = False

    def _close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels = []
        self._management = None
        self._containers = None

    # -- plumbing --------------------------------------------------------

    def _registry(self) -> mgmt_grpc.ManagementServiceStub:
        if not self.connected or self._management is None:
            raise ClipperException(
                "Not connected to Clipper: call ClipperConnection.connect() or start_clipper() first"
            )
        return self._management

    def _container_manager(self) -> cm_grpc.ContainerManagerServiceStub:
        self._registry()
        assert self._containers is not None
        return self._containers

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.rpc_timeout_seconds)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    # -- applications ----------------------------------------------------

    def register_application(
        self, name: str, input_type: str, default_output: str, slo_micros: int, description: str = ""
    ) -> None:
        """Registers an application (REST endpoint /{name}/predict). Registering
        one that exists with this same definition succeeds and changes
        nothing, so a re-run script or notebook works; another definition
        raises ClipperException (ALREADY_EXISTS) naming each field that differs."""
        try:
            type_value = parse_input_type(input_type)
        except ValueError as error:
            raise ClipperException(str(error)) from error
        self._call(
            self._registry().CreateApplication,
            mgmt_pb2.CreateApplicationRequest(
                name=name,
                input_type=type_value,
                default_output=default_output,
                slo_micros=int(slo_micros),
                description=description,
            ),
        )
        log.info("application %s registered", name)

    def update_application(
        self,
        name: str,
        default_output: str | None = None,
        slo_micros: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        request = mgmt_pb2.UpdateApplicationRequest(name=name)
        if default_output is not None:
            request.default_output = default_output
        if slo_micros is not None:
            request.slo_micros = int(slo_micros)
        if description is not None:
            request.description = description
        return application_dict(self._call(self._registry().UpdateApplication, request).application)

    def set_selection_policy(self, app_name: str, kind: str, **options: Any) -> dict[str, Any]:
        """Replaces the application's selection policy as a whole (live: routers
        follow the registry). Options: weights (split), gamma (exp3), eta (exp4),
        epsilon (epsilon_greedy), loss ("zero_one", "squared", "absolute"), loss_scale."""
        request = mgmt_pb2.UpdateApplicationRequest(name=app_name, policy=selection_policy(kind, **options))
        app = self._call(self._registry().UpdateApplication, request).application
        log.info("application %s selects models by %s", app_name, kind)
        return application_dict(app)

    def get_policy_state(self, app_name: str, uid: str = "") -> dict[str, Any] | None:
        """The learned policy state of the application (or of one user), as
        stored by the routers: {"policy": kind, "state": {...}}; None when
        nothing has been learned yet."""
        response = self._call(
            self._registry().GetPolicyState, mgmt_pb2.GetPolicyStateRequest(application=app_name, uid=uid)
        )
        return json.loads(response.state) if response.state else None

    def unregister_application(self, name: str) -> None:
        self._call(self._registry().DeleteApplication, mgmt_pb2.DeleteApplicationRequest(name=name))
        log.info("application %s unregistered", name)

    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        """Application names, or dicts describing them when verbose."""
        apps = self._call(self._registry().ListApplications, mgmt_pb2.ListApplicationsRequest()).applications
        return [application_dict(app) for app in apps] if verbose else [app.name for app in apps]

    def get_app_info(self, name: str) -> dict[str, Any] | None:
        """The application as a dict, or None when there is no such application."""
        try:
            response = self._call(self._registry().GetApplication, mgmt_pb2.GetApplicationRequest(name=name))
        except ClipperException as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return application_dict(response.application)

    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        self._call(self._registry().LinkModel, mgmt_pb2.LinkModelRequest(application=app_name, model_name=model_name))
        log.info("model %s linked to application %s", model_name, app_name)

    def unlink_model_from_app(self, app_name: str, model_name: str) -> None:
        self._call(
            self._registry().UnlinkModel, mgmt_pb2.UnlinkModelRequest(application=app_name, model_name=model_name)
        )
        log.info("model %s unlinked from application %s", model_name, app_name)

    def get_linked_models(self, app_name: str) -> list[str]:
        response = self._call(self._registry().GetApplication, mgmt_pb2.GetApplicationRequest(name=app_name))
        return list(response.application.linked_models)

    # -- models ----------------------------------------------------------

    def upload_artifact(self, data: bytes) -> str:
        """Stores `data` in the container-manager's artifact store; returns its digest."""
        digest = hashlib.sha256(data).hexdigest()

        def parts() -> Iterator[cm_pb2.UploadArtifactRequest]:
            yield cm_pb2.UploadArtifactRequest(header=cm_pb2.ArtifactHeader(size_bytes=len(data), sha256=digest))
            view = memoryview(data)
            for offset in range(0, len(data), ARTIFACT_CHUNK_BYTES):
                yield cm_pb2.UploadArtifactRequest(chunk=bytes(view[offset : offset + ARTIFACT_CHUNK_BYTES]))

        response = self._call(
            self._container_manager().UploadArtifact, parts(), timeout=_DEFAULT_DEPLOY_DEADLINE_SECONDS
        )
        log.info("artifact %s uploaded (%d bytes)", response.digest, response.size_bytes)
        return response.digest or digest

    def deploy_model(
        self,
        name: str,
        version: str | int,
        input_type: str,
        runtime: Runtime,
        labels: dict[str, str] | None = None,
        num_replicas: int = 1,
        batch_size: int = -1,
        set_current: bool = True,
        timeout_seconds: int = 0,
        resources: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """Registers a model version and waits until its replicas are ready,
        logging progress. `batch_size=-1` means no batch limit; the new version
        becomes current unless `set_current=False`. `resources`, as
        Kubernetes writes them (`{"requests": {"cpu": "500m", "memory":
        "512Mi"}, "limits": {"nvidia.com/gpu": "1"}}`), become each replica's
        requests and limits on the Kubernetes backend; the registry checks
        names and quantities."""
        try:
            type_value = parse_input_type(input_type)
        except ValueError as error:
            raise ClipperException(str(error)) from error
        model = resources_pb2.Model(
            name=name,
            version=str(version),
            input_type=type_value,
            runtime=model_runtime(runtime),
            max_batch_size=max(0, int(batch_size)),
            labels=dict(labels or {}),
            desired_replicas=int(num_replicas),
            resources=model_resources(resources),
        )
        request = cm_pb2.DeployModelRequest(model=model, set_current=set_current, timeout_seconds=int(timeout_seconds))
        deadline = timeout_seconds + 60.0 if timeout_seconds > 0 else _DEFAULT_DEPLOY_DEADLINE_SECONDS
        ready = False
        last_message = ""
        try:
            for progress in self._container_manager().DeployModel(request, timeout=deadline):
                stage = cm_pb2.DeployStage.Name(progress.stage).removeprefix("DEPLOY_STAGE_")
                last_message = progress.message
                log.info(
                    "deploy %s:%s: %s %s(%d/%d replicas ready)",
                    name,
                    model.version,
                    stage,
                    f"{progress.message} " if progress.message else "",
                    progress.ready_replicas,
                    progress.desired_replicas,
                )
                ready = ready or progress.stage == cm_pb2.DEPLOY_STAGE_READY
        except grpc.RpcError as error:
            failure = from_rpc_error(error)
            reason = runner_reason(failure.message)
            if reason is not None:
                # The SDK runner's own last line says why (e.g. the module the closure needs): it leads.
                failure = ClipperException(
                    f"deploy of {name}:{model.version} failed: {reason}\n{failure.message}", failure.code
                )
            raise failure from error
        if not ready and num_replicas > 0:
            raise ClipperException(
                f"deploy of {name}:{model.version} ended before its replicas were ready"
                + (f": {last_message}" if last_message else "")
            )
        log.info("model %s:%s deployed", name, model.version)

    def _list_models(self, name: str = "") -> mgmt_pb2.ListModelsResponse:
        return self._call(self._registry().ListModels, mgmt_pb2.ListModelsRequest(name=name))

    def get_all_models(self, verbose: bool = False) -> list[Any]:
        """ "name:version" strings, or dicts describing each version when verbose."""
        response = self._list_models()
        if not verbose:
            return [f"{m.name}:{m.version}" for m in response.models]
        current = {c.model_name: c.version for c in response.current_versions}
        return [model_dict(m, current.get(m.name)) for m in response.models]

    def get_model_info(self, name: str, version: str | int) -> dict[str, Any] | None:
        """The model version as a dict, or None when there is no such version."""
        try:
            response = self._call(self._registry().GetModel, mgmt_pb2.GetModelRequest(name=name, version=str(version)))
        except ClipperException as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return model_dict(response.model, response.current_version)

    def get_current_model_version(self, name: str) -> str:
        response = self._call(self._registry().GetModel, mgmt_pb2.GetModelRequest(name=name, version=""))
        return response.current_version

    def set_model_version(self, name: str, version: str | int, num_replicas: int | None = None) -> None:
        """Makes `version` the current version (and scales it when num_replicas is given)."""
        self._call(self._registry().SetModelVersion, mgmt_pb2.SetModelVersionRequest(name=name, version=str(version)))
        log.info("model %s now at version %s", name, version)
        if num_replicas is not None:
            self.set_num_replicas(name, num_replicas, version)

    # -- replicas --------------------------------------------------------

    def get_all_model_replicas(self, verbose: bool = False) -> list[Any]:
        """ "name:version:replica_id" strings, or dicts when verbose."""
        replicas = self._call(self._container_manager().ListModelReplicas, cm_pb2.ListModelReplicasRequest()).replicas
        if verbose:
            return [replica_dict(r) for r in replicas]
        return [f"{r.model_name}:{r.model_version}:{r.id}" for r in replicas]

    def set_num_replicas(
        self, name: str, num_replicas: int, version: str | int | None = None, timeout_seconds: int = 0
    ) -> None:
        """Scales a version (the current one when version is None) and waits for it."""
        deadline = timeout_seconds + 60.0 if timeout_seconds > 0 else _DEFAULT_DEPLOY_DEADLINE_SECONDS
        self._call(
            self._container_manager().ScaleModel,
            cm_pb2.ScaleModelRequest(
                name=name,
                version="" if version is None else str(version),
                replicas=int(num_replicas),
                timeout_seconds=int(timeout_seconds),
            ),
            timeout=deadline,
        )
        log.info("model %s scaled to %d replicas", name, num_replicas)

    def get_num_replicas(self, name: str, version: str | int | None = None) -> int:
        """The replicas the container-manager runs for a version (the current one by default)."""
        resolved = self.get_current_model_version(name) if version is None else str(version)
        replicas = self._call(
            self._container_manager().ListModelReplicas,
            cm_pb2.ListModelReplicasRequest(model_name=name, model_version=resolved),
        ).replicas
        return len(replicas)

    def get_model_logs(
        self, name: str, version: str | int | None = None, tail_lines: int = 200
    ) -> dict[str, list[str]]:
        """The last log lines of each replica of a version, by replica id."""
        response = self._call(
            self._container_manager().GetLogs,
            cm_pb2.GetLogsRequest(
                model_name=name, model_version="" if version is None else str(version), tail_lines=tail_lines
            ),
        )
        return {log_.replica_id: list(log_.lines) for log_ in response.logs}

    def get_query_addr(self) -> str:
        return self.cm.query_address

    # -- stopping models -------------------------------------------------

    def _stop(self, name: str, versions: Iterable[str]) -> None:
        response = self._call(
            self._container_manager().StopModel,
            cm_pb2.StopModelRequest(name=name, versions=[str(v) for v in versions]),
        )
        log.info("stopped %d replicas of %s", response.stopped_replicas, name)

    def stop_models(self, model_names: str | Sequence[str] | dict[str, Sequence[str]]) -> None:
        """Stops every version of the named models, or the listed versions when
        given a dict {name: [versions]}."""
        if isinstance(model_names, dict):
            self.stop_versioned_models(model_names)
            return
        for name in [model_names] if isinstance(model_names, str) else model_names:
            self._stop(name, [])

    def stop_versioned_models(self, model_versions_dict: dict[str, Sequence[str | int]]) -> None:
        for name, versions in model_versions_dict.items():
            if versions:
                self._stop(name, [str(v) for v in versions])

    def stop_inactive_model_versions(self, model_names: str | Sequence[str]) -> None:
        """Stops every version of the named models but the current one."""
        for name in [model_names] if isinstance(model_names, str) else model_names:
            response = self._list_models(name)
            current = {c.model_name: c.version for c in response.current_versions}.get(name)
            inactive = [m.version for m in response.models if m.name == name and m.version != current]
            if inactive:
                self._stop(name, inactive)

    def stop_all_model_containers(self) -> None:
        names = dict.fromkeys(m.name for m in self._list_models().models)
        for name in names:
            self._stop(name, [])


def model_resources(resources: dict[str, dict[str, str]] | None) -> resources_pb2.ModelResources:
    """`{"requests": {...}, "limits": {...}}` as the Model's ModelResources,
    or a ClipperException naming what is wrong."""
    if resources is None:
        return resources_pb2.ModelResources()
    if not isinstance(resources, dict) or not set(resources) <= {"requests", "limits"}:
        raise ClipperException(
            f"resources must be a dict with the keys requests and/or limits (as in Kubernetes), got {resources!r}"
        )
    parts: dict[str, dict[str, str]] = {}
    for kind, values in resources.items():
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise ClipperException(f'resources["{kind}"] must map resource names to quantity strings, got {values!r}')
        parts[kind] = dict(values)
    return resources_pb2.ModelResources(**parts)
