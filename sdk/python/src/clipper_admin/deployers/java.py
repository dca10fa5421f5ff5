"""Deploying a Java model: a class implementing the Java SDK's `ai.clipper.Model`
in a jar (sdk/java), as Clipper's deployers deploy a model in one call."""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

from clipper.v1 import resources_pb2

from ..connection import ClipperConnection
from ..exceptions import ClipperException
from ._deployment import ReplicaOptions
from ._deployment import create_endpoint as create_app_endpoint

log = logging.getLogger("clipper_admin")

# A Java binary class name, as the container-manager checks it ("$" for nested classes).
_JAVA_CLASS_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$")


def read_model_jar(jar_path: str | Path, class_name: str) -> bytes:
    """The jar's bytes, after checking it is a jar that holds `class_name`, so a
    typo is told here rather than by a replica that cannot load the class."""
    if not _JAVA_CLASS_NAME.match(class_name):
        raise ClipperException(
            f"class_name must be a fully qualified Java class name (com.example.MyModel), got {class_name!r}"
        )
    path = Path(jar_path)
    if not path.is_file():
        raise ClipperException(f"jar_path {str(path)!r} is not a file")
    try:
        with zipfile.ZipFile(path) as jar:
            entries = set(jar.namelist())
    except zipfile.BadZipFile as error:
        raise ClipperException(f"jar_path {str(path)!r} is not a jar: {error}") from error
    entry = class_name.replace(".", "/") + ".class"
    if entry not in entries:
        raise ClipperException(f"{str(path)!r} has no class {class_name} (no entry {entry})")
    return path.read_bytes()


def deploy_java_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    jar_path: str | Path,
    class_name: str,
    jvm_options: list[str] | None = None,
    labels: dict[str, str] | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    set_current: bool = True,
    timeout_seconds: int = 0,
    resources: dict[str, dict[str, str]] | None = None,
) -> None:
    """Uploads the jar at `jar_path` to the container-manager's artifact store and
    deploys `class_name` in it as model `name:version`, waiting until its
    replicas are ready.

    The class implements the Java SDK's `ai.clipper.Model<I>` for `input_type`
    and has a public no-argument constructor; compile against
    clipper-model-sdk-VERSION.jar (scope provided) and leave the SDK out of the
    jar. Each replica runs
    `java <jvm_options> -cp <the SDK's -all.jar>:<the jar> ai.clipper.ModelMain <class_name>`
    with the container-manager's `--java` and `--java-sdk-jar`. A container-manager
    without Java or the SDK jar refuses the deploy with a ClipperException naming
    the flag to set.
    """
    options = list(jvm_options or [])
    for option in options:
        if not option.startswith("-"):
            raise ClipperException(f'jvm_options must each start with "-", got {option!r}')
    data = read_model_jar(jar_path, class_name)
    digest = clipper_conn.upload_artifact(data)
    log.info("jar %s for %s:%s uploaded (%d bytes, class %s)", jar_path, name, version, len(data), class_name)
    runtime = resources_pb2.JavaClassRuntime(jar_digest=digest, class_name=class_name, jvm_options=options)
    replicas = ReplicaOptions(labels, num_replicas, batch_size, set_current, timeout_seconds, resources)
    replicas.deploy(clipper_conn, name, version, input_type, runtime)


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    jar_path: str | Path,
    class_name: str,
    default_output: str = "None",
    version: str | int = 1,
    slo_micros: int = 3000000,
    **deploy_options: Any,
) -> None:
    """Registers an application `name`, deploys `class_name` from the jar as model
    `name` and links them, as Clipper's create_endpoint; `deploy_options` are
    deploy_java_model's keyword arguments (jvm_options, labels, num_replicas, ...)."""
    create_app_endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: deploy_java_model(clipper_conn, name, version, input_type, jar_path, class_name, **deploy_options),
    )
