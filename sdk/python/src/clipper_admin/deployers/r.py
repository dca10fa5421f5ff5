"""Deploying an R model: an R function saved with the R SDK's
`clippermodel::save_model` (an .rds file), or an R script that defines
`predict`, as Clipper's R deployer deployed an R function in one call.

The container-manager runs it with the R SDK (sdk/r), which serves the model
over the Connect protocol (R has no gRPC library); see docs/model-containers.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from clipper.v1 import resources_pb2

from ..connection import ClipperConnection
from ..exceptions import ClipperException
from ._deployment import ReplicaOptions
from ._deployment import create_endpoint as create_app_endpoint

log = logging.getLogger("clipper_admin")

# saveRDS writes gzip by default; uncompressed RDS starts with "X\n" (XDR) or "A\n" / "B\n".
_RDS_MAGIC = (b"\x1f\x8b", b"X\n", b"A\n", b"B\n", b"BZh", b"\xfd7zXZ")


def read_r_model(model_path: str | Path) -> tuple[bytes, str]:
    """The file's bytes and its format ("rds" or "script"), checked here so that
    a wrong file is told at once rather than by a replica that cannot load it."""
    path = Path(model_path)
    if not path.is_file():
        raise ClipperException(f"model_path {str(path)!r} is not a file")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".rds":
        if not data.startswith(_RDS_MAGIC):
            raise ClipperException(f"{str(path)!r} is not an RDS file (write it with clippermodel::save_model)")
        return data, "rds"
    if suffix == ".r":
        if b"predict" not in data:
            raise ClipperException(
                f"{str(path)!r} does not mention predict: the script must define predict <- function(inputs)"
            )
        return data, "script"
    raise ClipperException(f"model_path must be an .rds (clippermodel::save_model) or an .R script, got {str(path)!r}")


def deploy_r_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    model_path: str | Path,
    packages: list[str] | None = None,
    labels: dict[str, str] | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    set_current: bool = True,
    timeout_seconds: int = 0,
    resources: dict[str, dict[str, str]] | None = None,
) -> None:
    """Uploads the R model at `model_path` (an .rds from clippermodel::save_model,
    or an .R script defining `predict`) to the container-manager's artifact store
    and deploys it as model `name:version`, waiting until its replicas are ready.

    `predict(inputs)` gets a list with one element per input and returns one
    string per input. `packages` are recorded with the model (an .rds from
    save_model attaches its own when it loads). A container-manager without R
    or the R SDK refuses the deploy with a ClipperException naming what to install.
    """
    data, model_format = read_r_model(model_path)
    digest = clipper_conn.upload_artifact(data)
    log.info("R model %s for %s:%s uploaded (%d bytes, %s)", model_path, name, version, len(data), model_format)
    runtime = resources_pb2.RFunctionRuntime(artifact_digest=digest, format=model_format, packages=list(packages or []))
    replicas = ReplicaOptions(labels, num_replicas, batch_size, set_current, timeout_seconds, resources)
    replicas.deploy(clipper_conn, name, version, input_type, runtime)


def create_endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    model_path: str | Path,
    default_output: str = "None",
    version: str | int = 1,
    slo_micros: int = 3000000,
    **deploy_options: Any,
) -> None:
    """Registers an application `name`, deploys the R model as model `name` and
    links them, as Clipper's create_endpoint; `deploy_options` are
    deploy_r_model's keyword arguments (packages, labels, num_replicas, ...)."""
    create_app_endpoint(
        clipper_conn,
        name,
        input_type,
        default_output,
        slo_micros,
        lambda: deploy_r_model(clipper_conn, name, version, input_type, model_path, **deploy_options),
    )
