"""Deploying an ONNX model (from any framework that exports ONNX: skl2onnx,
torch.onnx, tf2onnx, onnxmltools, or onnx's own helper API), run by the
runtime with onnxruntime on the CPU (clipper_runtime.loaders.onnx).

The model's first input takes the batch, a row per input, as the tensor type
it declares (float, double, int32, int64, or string for input_type
"strings"); replicas answer with the output named `output` (default: the
model's first output), one value, row or mapping per input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..connection import ClipperConnection
from ..exceptions import ClipperException
from ._deployment import (
    NUMERIC_INPUT_TYPES,
    SavedModel,
    check_input_type,
    deploy_saved_model,
    endpoint_creator,
    framework_packages,
    import_framework,
)

REQUIREMENT = "onnxruntime"


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ClipperException(f"model {str(path)!r} is not a file")
        return path.read_bytes()
    serialize = getattr(model, "SerializeToString", None)
    if type(model).__name__ == "ModelProto" and callable(serialize):
        return serialize()
    raise ClipperException(
        f"model must be an onnx.ModelProto, the bytes of one or the path of an .onnx file, "
        f"got {type(model).__module__}.{type(model).__name__}"
    )


def save_onnx_model(model: Any, output: str | None = None, pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The model's bytes, after onnxruntime here has loaded them and found its
    input of a type a Clipper input can be, and the output to answer with."""
    import_framework("onnxruntime", REQUIREMENT, "onnx")
    from clipper_runtime.loaders import onnx as loader

    data = _model_bytes(model)
    try:
        session = loader.open_session(data)
    except Exception as error:  # onnxruntime's InvalidProtobuf, InvalidGraph, Fail
        raise ClipperException(f"onnxruntime cannot load the model: {type(error).__name__}: {error}") from error
    try:
        chosen = loader.check_model(session, output)
    except ValueError as error:
        raise ClipperException(str(error)) from error
    return SavedModel(
        framework="onnx",
        files={loader.MODEL_FILE: data},
        options={"output": chosen},
        packages=framework_packages([REQUIREMENT, "numpy"], None, pkgs_to_install),
    )


def deploy_onnx_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    model: Any,
    output: str | None = None,
    pkgs_to_install: list[str] | None = None,
    interpreter: str | None = None,
    **replica_options: Any,
) -> None:
    """Checks the ONNX `model` (a ModelProto, its bytes, or an .onnx path) with
    onnxruntime, uploads it and deploys it as model `name:version`, waiting
    until its replicas are ready. Replicas run with `interpreter` as
    deploy_python_closure's do.

    `replica_options` are those of every deployer: labels, num_replicas,
    batch_size (-1: no limit), set_current, timeout_seconds, resources
    (requests and limits, as in ClipperConnection.deploy_model).
    """
    check_input_type(input_type, (*NUMERIC_INPUT_TYPES, "strings"), "onnx")
    saved = save_onnx_model(model, output, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_onnx_model)
