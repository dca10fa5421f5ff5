"""In-test gRPC servers implementing the subset of ManagementService and
ContainerManagerService that clipper_admin calls, recording requests."""

from __future__ import annotations

import hashlib
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

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


class FakeRegistry(mgmt_grpc.ManagementServiceServicer):
    def __init__(self) -> None:
        self.requests: list[tuple[str, object]] = []
        self.apps: dict[str, resources_pb2.Application] = {}
        self.models: dict[tuple[str, str], resources_pb2.Model] = {}
        self.current: dict[str, str] = {}

    def _record(self, method, request):
        self.requests.append((method, request))

    def CreateApplication(self, request, context):
        self._record("CreateApplication", request)
        if request.name in self.apps:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f'application "{request.name}" already exists')
        app = resources_pb2.Application(
            name=request.name,
            input_type=request.input_type,
            default_output=request.default_output,
            slo_micros=request.slo_micros,
            description=request.description,
        )
        self.apps[request.name] = app
        return mgmt_pb2.CreateApplicationResponse(application=app)

    def _app(self, name, context):
        if name not in self.apps:
            context.abort(grpc.StatusCode.NOT_FOUND, f'application "{name}" not found')
        return self.apps[name]

    def GetApplication(self, request, context):
        self._record("GetApplication", request)
        return mgmt_pb2.GetApplicationResponse(application=self._app(request.name, context))

    def ListApplications(self, request, context):
        self._record("ListApplications", request)
        return mgmt_pb2.ListApplicationsResponse(applications=list(self.apps.values()))

    def UpdateApplication(self, request, context):
        self._record("UpdateApplication", request)
        app = self._app(request.name, context)
        if request.HasField("default_output"):
            app.default_output = request.default_output
        if request.HasField("slo_micros"):
            app.slo_micros = request.slo_micros
        if request.HasField("policy"):
            app.policy.CopyFrom(request.policy)
        return mgmt_pb2.UpdateApplicationResponse(application=app)

    def GetPolicyState(self, request, context):
        self._record("GetPolicyState", request)
        self._app(request.application, context)
        return mgmt_pb2.GetPolicyStateResponse(version=1, state=b'{"policy":"exp3","state":{"logWeights":{"a":1}}}')

    def DeleteApplication(self, request, context):
        self._record("DeleteApplication", request)
        self._app(request.name, context)
        del self.apps[request.name]
        return mgmt_pb2.DeleteApplicationResponse()

    def LinkModel(self, request, context):
        self._record("LinkModel", request)
        app = self._app(request.application, context)
        if request.model_name not in {m for m, _ in self.models}:
            context.abort(grpc.StatusCode.NOT_FOUND, f'model "{request.model_name}" not found')
        app.linked_models.append(request.model_name)
        return mgmt_pb2.LinkModelResponse(application=app)

    def UnlinkModel(self, request, context):
        self._record("UnlinkModel", request)
        app = self._app(request.application, context)
        app.linked_models.remove(request.model_name)
        return mgmt_pb2.UnlinkModelResponse(application=app)

    def GetModel(self, request, context):
        self._record("GetModel", request)
        version = request.version or self.current.get(request.name, "")
        model = self.models.get((request.name, version))
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'model "{request.name}:{request.version}" not found')
        return mgmt_pb2.GetModelResponse(model=model, current_version=self.current.get(request.name, ""))

    def ListModels(self, request, context):
        self._record("ListModels", request)
        models = [m for (name, _), m in self.models.items() if not request.name or name == request.name]
        return mgmt_pb2.ListModelsResponse(
            models=models,
            current_versions=[resources_pb2.CurrentVersion(model_name=n, version=v) for n, v in self.current.items()],
        )

    def SetModelVersion(self, request, context):
        self._record("SetModelVersion", request)
        if (request.name, request.version) not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, f'model "{request.name}:{request.version}" not found')
        previous = self.current.get(request.name, "")
        self.current[request.name] = request.version
        return mgmt_pb2.SetModelVersionResponse(previous_version=previous)


class FakeContainerManager(cm_grpc.ContainerManagerServiceServicer):
    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.requests: list[tuple[str, object]] = []
        self.artifacts: dict[str, bytes] = {}
        self.chunk_sizes: list[int] = []
        self.replicas: list[resources_pb2.Replica] = []
        # Ends the progress stream early, without an error, like a broken server.
        self.end_deploy_before_ready = False

    def UploadArtifact(self, request_iterator, context):
        header = next(request_iterator)
        if header.WhichOneof("part") != "header":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be the header")
        data = bytearray()
        for part in request_iterator:
            self.chunk_sizes.append(len(part.chunk))
            data += part.chunk
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != header.header.size_bytes or digest != header.header.sha256:
            context.abort(grpc.StatusCode.DATA_LOSS, "artifact size or sha256 does not match its header")
        self.artifacts[digest] = bytes(data)
        self.requests.append(("UploadArtifact", header))
        return cm_pb2.UploadArtifactResponse(digest=digest, size_bytes=len(data))

    def DeployModel(self, request, context):
        self.requests.append(("DeployModel", request))
        model = request.model
        closure = model.runtime.python_closure
        if model.runtime.WhichOneof("kind") == "python_closure" and closure.artifact_digest not in self.artifacts:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"artifact {closure.artifact_digest} not found")
        yield cm_pb2.DeployModelResponse(stage=cm_pb2.DEPLOY_STAGE_REGISTERED, desired_replicas=model.desired_replicas)
        if self.end_deploy_before_ready:
            yield cm_pb2.DeployModelResponse(stage=cm_pb2.DEPLOY_STAGE_STARTING, message="replica 0 starting")
            return
        if model.name == "needs-sklearn":
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"replica 1a2b of model {model.name}:{model.version} failed to start: exited with code 3; it stopped "
                "3 times in a row before becoming ready; last log lines:\n"
                "2026-01-01T00:00:00.000Z manager python: /env/bin/python, the interpreter recorded with the model\n"
                "2026-01-01T00:00:00.100Z stderr ModuleNotFoundError: No module named 'sklearn'\n"
                "2026-01-01T00:00:00.200Z stderr closure_runner: cannot load the closure: it needs the module "
                "'sklearn', which the interpreter /env/bin/python (Python 3.11) cannot import\n"
                "2026-01-01T00:00:00.300Z manager exited with code 3",
            )
        if model.name == "broken":
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "replica broken:1-0 exited with code 1: ModuleNotFoundError: No module named 'torch'",
            )
        self.registry.models[(model.name, model.version)] = model
        if request.set_current or model.name not in self.registry.current:
            self.registry.current[model.name] = model.version
        for index in range(model.desired_replicas):
            self.replicas.append(
                resources_pb2.Replica(
                    id=f"{model.name}:{model.version}-{index}",
                    model_name=model.name,
                    model_version=model.version,
                    endpoint=f"127.0.0.1:{7000 + index}",
                    state=resources_pb2.REPLICA_STATE_READY,
                )
            )
        yield cm_pb2.DeployModelResponse(
            stage=cm_pb2.DEPLOY_STAGE_READY,
            ready_replicas=model.desired_replicas,
            desired_replicas=model.desired_replicas,
        )

    def ScaleModel(self, request, context):
        self.requests.append(("ScaleModel", request))
        return cm_pb2.ScaleModelResponse()

    def StopModel(self, request, context):
        self.requests.append(("StopModel", request))
        before = len(self.replicas)
        self.replicas = [
            r
            for r in self.replicas
            if not (r.model_name == request.name and (not request.versions or r.model_version in request.versions))
        ]
        return cm_pb2.StopModelResponse(stopped_replicas=before - len(self.replicas))

    def ListModelReplicas(self, request, context):
        self.requests.append(("ListModelReplicas", request))
        return cm_pb2.ListModelReplicasResponse(
            replicas=[
                r
                for r in self.replicas
                if (not request.model_name or r.model_name == request.model_name)
                and (not request.model_version or r.model_version == request.model_version)
            ]
        )

    def GetLogs(self, request, context):
        self.requests.append(("GetLogs", request))
        return cm_pb2.GetLogsResponse(logs=[cm_pb2.ReplicaLog(replica_id="r-0", lines=["started", "ready"])])


class FakeClipper:
    """Registry and container-manager servers on free loopback ports."""

    def __init__(self) -> None:
        self.registry = FakeRegistry()
        self.container_manager = FakeContainerManager(self.registry)
        self.health = health.HealthServicer()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._servers: list[grpc.Server] = []
        self.registry_port = self._serve(
            lambda s: (
                mgmt_grpc.add_ManagementServiceServicer_to_server(self.registry, s),
                health_pb2_grpc.add_HealthServicer_to_server(self.health, s),
            )
        )
        self.container_manager_port = self._serve(
            lambda s: cm_grpc.add_ContainerManagerServiceServicer_to_server(self.container_manager, s)
        )

    def _serve(self, add) -> int:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add(server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._servers.append(server)
        return port

    def stop(self) -> None:
        for server in self._servers:
            server.stop(grace=None).wait()
