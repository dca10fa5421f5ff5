"""Deploying a Python closure, as Clipper's `python_deployer`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from clipper_runtime.artifact import current_python_version, dump_artifact

from ..connection import ClipperConnection
from ..exceptions import ClipperException
from ._deployment import ReplicaOptions, chosen_interpreter, python_runtime
from ._deployment import create_endpoint as create_app_endpoint
from .closure_dependencies import local_modules, merge_packages, required_packages

log = logging.getLogger("clipper_admin")


@dataclass
class SerializedClosure:
    data: bytes
    python_version: str
    packages: list[str]


def serialize_closure(func: Any, pkgs_to_install: list[str] | None = None) -> SerializedClosure:
    """Cloudpickles `func` (a function, or an object with `.predict`) into an
    artifact. Code of the user's own modules is pickled by value so the
    runner need not import it; installed packages are recorded."""
    if not (callable(func) or callable(getattr(func, "predict", None))):
        raise ClipperException(
            f"func must be a function predict(inputs) -> list[str] or an object with .predict, "
            f"got {type(func).__name__}"
        )
    modules = local_modules(func)
    registered = []
    try:
        for module in modules:
            if module.__name__ not in cloudpickle.list_registry_pickle_by_value():
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
        packages = merge_packages(required_packages(func), list(pkgs_to_install or []))
        try:
            data = dump_artifact(func, packages)
        except Exception as error:
            raise ClipperException(f"cannot pickle the closure: {type(error).__name__}: {error}") from error
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
    return SerializedClosure(data=data, python_version=current_python_version(), packages=packages)


def deploy_python_closure(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    func: Callable[[list], list[str]] | Any,
    base_image: str = "default",
    labels: dict[str, str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
    set_current: bool = True,
    timeout_seconds: int = 0,
    resources: dict[str, dict[str, str]] | None = None,
    interpreter: str | None = None,
) -> None:
    """Pickles `func`, uploads it to the container-manager and deploys it as
    model `name:version`, waiting until its replicas are ready.

    Replicas run `<interpreter> -m clipper_runtime.closure_runner`, where the
    interpreter is, by default, this process's own (`sys.executable`: your
    venv, conda env or notebook kernel, where the closure's packages are),
    when that file exists on the container-manager's machine; otherwise the
    container-manager's default (its `--python`). `interpreter` names another
    one (an absolute path on the container-manager's machine); `""` always
    uses the container-manager's default. A closure that cannot load there
    fails the deploy with a ClipperException naming the missing module.

    `base_image` and `registry` are Docker options of Clipper's and ignored
    here: replicas are local processes. `resources` are each replica's
    requests and limits on Kubernetes (ClipperConnection.deploy_model).
    """
    if base_image != "default" or registry is not None:
        log.info("base_image and registry are ignored: closures run as local processes")
    chosen = chosen_interpreter(interpreter)
    closure = serialize_closure(func, pkgs_to_install)
    log.info(
        "closure for %s:%s pickled (%d bytes, Python %s, packages: %s; runs with %s)",
        name,
        version,
        len(closure.data),
        closure.python_version,
        ", ".join(closure.packages) or "none",
        chosen or "the container-manager's default Python",
    )
    runtime = python_runtime(clipper_conn, closure.data, closure.packages, chosen)
    replicas = ReplicaOptions(labels, num_replicas, batch_size, set_current, timeout_seconds, resources)
    replicas.deploy(clipper_conn, name, version, input_type, runtime)


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    func: Callable[[list], list[str]] | Any,
    default_output: str = "None",
    version: str | int = 1,
    slo_micros: int = 3000000,
    labels: dict[str, str] | None = None,
    registry: str | None = None,
    base_image: str = "default",
    num_replicas: int = 1,
    batch_size: int = -1,
    pkgs_to_install: list[str] | None = None,
    interpreter: str | None = None,
) -> None:
    """Registers an application `name`, deploys `func` as model `name` (see
    deploy_python_closure for `interpreter`) and links them."""
    create_app_endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: deploy_python_closure(
            clipper_conn,
            name,
            version,
            input_type,
            func,
            base_image,
            labels,
            registry,
            num_replicas,
            batch_size,
            pkgs_to_install,
            interpreter=interpreter,
        ),
    )
