"""What every deployer shares: how a model version's replicas run (the
keyword arguments of every deploy_*), Clipper's create_endpoint (register an
application, deploy a model of the same name, link them), and, for the
Python deployers, the interpreter, the recorded packages and the upload of a
Python artifact."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clipper.v1 import resources_pb2
from clipper_runtime.artifact import current_python_version, dump_framework_artifact

from ..connection import ClipperConnection, Runtime
from ..exceptions import ClipperException
from .closure_dependencies import merge_packages, required_packages

log = logging.getLogger("clipper_admin")


@dataclass(frozen=True)
class ReplicaOptions:
    """How a deployed version runs; the defaults are the deploy_* defaults
    (`batch_size=-1`: no batch limit)."""

    labels: dict[str, str] | None = None
    num_replicas: int = 1
    batch_size: int = -1
    set_current: bool = True
    timeout_seconds: int = 0
    #: Each replica's requests and limits, as Kubernetes writes them (ClipperConnection.deploy_model).
    resources: dict[str, dict[str, str]] | None = None

    def deploy(self, conn: ClipperConnection, name: str, version: str | int, input_type: str, runtime: Runtime) -> None:
        conn.deploy_model(
            name,
            version,
            input_type,
            runtime,
            labels=self.labels,
            num_replicas=self.num_replicas,
            batch_size=self.batch_size,
            set_current=self.set_current,
            timeout_seconds=self.timeout_seconds,
            resources=self.resources,
        )


def create_endpoint(
    conn: ClipperConnection,
    name: str,
    input_type: str,
    default_output: str,
    slo_micros: int,
    deploy: Callable[[], None],
) -> None:
    """Clipper's create_endpoint: the application `name`, then `deploy()` (which
    deploys the model `name`), then the link between them."""
    conn.register_application(name, input_type, default_output, slo_micros)
    deploy()
    conn.link_model_to_app(name, name)


def endpoint_creator(deploy: Callable[..., None]) -> Callable[..., None]:
    """Clipper's create_endpoint for a deployer whose deploy function is
    `deploy(conn, name, version, input_type, model, **deploy_options)`."""

    def create_endpoint_of_deployer(
        clipper_conn: ClipperConnection,
        name: str,
        input_type: str,
        model: Any,
        default_output: str = "None",
        version: str | int = 1,
        slo_micros: int = 3000000,
        **deploy_options: Any,
    ) -> None:
        create_endpoint(
            clipper_conn,
            name,
            input_type,
            default_output,
            slo_micros,
            lambda: deploy(clipper_conn, name, version, input_type, model, **deploy_options),
        )

    create_endpoint_of_deployer.__name__ = "create_endpoint"
    create_endpoint_of_deployer.__doc__ = (
        f"Registers an application `name`, deploys `model` as model `name` with {deploy.__name__} "
        "(`deploy_options` are its keyword arguments) and links them, as Clipper's create_endpoint."
    )
    return create_endpoint_of_deployer


def deploying_interpreter() -> str:
    """The absolute path of this process's interpreter, by which the container-manager
    runs its Python models (kept as given: a venv's bin/python is a symbolic link that must
    not be resolved, or it would no longer be that venv); empty when Python does not know it."""
    return os.path.abspath(sys.executable) if sys.executable else ""


def chosen_interpreter(interpreter: str | None) -> str:
    """`interpreter` (None: this process's own), checked to be absolute or empty."""
    chosen = deploying_interpreter() if interpreter is None else interpreter
    if chosen and not os.path.isabs(chosen):
        raise ClipperException(f"interpreter must be an absolute path (or empty), got {chosen!r}")
    return chosen


def python_runtime(
    conn: ClipperConnection, artifact: bytes, packages: list[str], interpreter: str
) -> resources_pb2.PythonClosureRuntime:
    """Uploads a Python artifact (clipper_runtime.artifact) and describes how
    the container-manager runs it: `<interpreter> -m clipper_runtime.closure_runner`."""
    digest = conn.upload_artifact(artifact)
    return resources_pb2.PythonClosureRuntime(
        artifact_digest=digest,
        python_version=current_python_version(),
        packages=packages,
        interpreter=interpreter,
    )


def import_framework(module: str, requirement: str, deployer: str) -> types.ModuleType:
    """The framework's module, or a ClipperException saying what to install:
    a framework deployer saves the model with the framework itself."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ClipperException(
            f"deployers.{deployer} needs the package {requirement} in this environment "
            f"({sys.executable or 'python'} -m pip install {requirement}): {error}"
        ) from error


def framework_packages(distributions: list[str], model: Any, pkgs_to_install: list[str] | None) -> list[str]:
    """The packages a framework model records, as deploy_python_closure records a
    closure's ("name==version"): the framework's own distributions installed
    here, those of any module the model's objects come from (a pipeline step
    from another package), and the user's `pkgs_to_install`, which win."""
    pinned = []
    for distribution in distributions:
        try:
            pinned.append(f"{distribution}=={importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return merge_packages(sorted(set(pinned) | set(required_packages(model))), list(pkgs_to_install or []))


def installed_distribution(candidates: tuple[str, ...]) -> list[str]:
    """The first of `candidates` installed here (xgboost ships as xgboost or xgboost-cpu)."""
    for candidate in candidates:
        try:
            importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
        return [candidate]
    return []


@dataclass(frozen=True)
class SavedModel:
    """A model saved by its framework deployer: the files of the framework's own
    format, the runtime loader's options, and the packages it needs."""

    framework: str
    files: dict[str, bytes]
    options: dict[str, str]
    packages: list[str]


# The input types whose inputs a framework model takes as rows of a feature matrix.
NUMERIC_INPUT_TYPES = ("doubles", "floats", "ints")


def check_input_type(input_type: str, accepted: tuple[str, ...], deployer: str) -> None:
    if input_type not in accepted:
        raise ClipperException(
            f"deployers.{deployer} takes input_type {' or '.join(accepted)} (a row of features per input), "
            f"got {input_type!r}"
        )


def deploy_saved_model(
    conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    saved: SavedModel,
    interpreter: str | None,
    replica_options: dict[str, Any],
) -> None:
    """Uploads a framework artifact (clipper_runtime.artifact) of `saved` and
    deploys it; replicas load it with clipper_runtime.loaders.
    `replica_options` are ReplicaOptions' fields."""
    try:
        replicas = ReplicaOptions(**replica_options)
    except TypeError as error:
        raise ClipperException(f"{error} (the options are those of ReplicaOptions)") from error
    chosen = chosen_interpreter(interpreter)
    artifact = dump_framework_artifact(saved.framework, saved.files, saved.options, saved.packages)
    log.info(
        "%s model for %s:%s saved (%d bytes, %s; packages: %s; runs with %s)",
        saved.framework,
        name,
        version,
        len(artifact),
        ", ".join(f"{key}={value}" for key, value in sorted(saved.options.items())) or "no options",
        ", ".join(saved.packages) or "none",
        chosen or "the container-manager's default Python",
    )
    replicas.deploy(conn, name, version, input_type, python_runtime(conn, artifact, saved.packages, chosen))
