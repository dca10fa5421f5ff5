"""Deploying a PyTorch module saved as TorchScript (self-contained: a replica
needs torch, not the module's Python class), run by the runtime on the CPU in
eval mode without autograd (clipper_runtime.loaders.pytorch).

`model` is a ScriptModule (from torch.jit.script or torch.jit.trace) or an
nn.Module, which is scripted here. The batch is one tensor of `dtype`
(float32 by default), a row per input; replicas answer the module's output,
one value or row (a JSON list) per input.

PyPI's torch wheel is CUDA-enabled and pulls about 2.8 GB of wheels (CUDA,
cuDNN, NCCL, triton); the CPU-only wheels are not on PyPI. CI does not
install it: this deployer is tested when torch is importable (see
sdk/python/tests/test_e2e_frameworks.py).
"""

from __future__ import annotations

import io
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

REQUIREMENT = "torch"


def save_pytorch_model(model: Any, dtype: str = "float32", pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The module saved as TorchScript, after checking its kind and `dtype`."""
    torch = import_framework("torch", REQUIREMENT, "pytorch")
    from clipper_runtime.loaders import pytorch as loader

    if dtype not in loader.DTYPES:
        raise ClipperException(f"dtype must be one of {', '.join(loader.DTYPES)}, got {dtype!r}")
    if isinstance(model, torch.jit.ScriptModule):
        scripted = model
    elif isinstance(model, torch.nn.Module):
        try:
            scripted = torch.jit.script(model)
        except Exception as error:  # TorchScript's frontend errors name the unsupported construct
            raise ClipperException(
                f"cannot script the {type(model).__name__} ({type(error).__name__}: {error}); trace it yourself "
                "with torch.jit.trace(model, example_batch) and deploy what that returns"
            ) from error
    else:
        raise ClipperException(
            "model must be a torch.nn.Module or a TorchScript module, "
            f"got {type(model).__module__}.{type(model).__name__}"
        )
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return SavedModel(
        framework="pytorch",
        files={loader.MODEL_FILE: buffer.getvalue()},
        options={"dtype": dtype},
        packages=framework_packages([REQUIREMENT, "numpy"], None, pkgs_to_install),
    )


def deploy_pytorch_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    model: Any,
    dtype: str = "float32",
    pkgs_to_install: list[str] | None = None,
    interpreter: str | None = None,
    **replica_options: Any,
) -> None:
    """Saves `model` as TorchScript, uploads it and deploys it as model
    `name:version`, waiting until its replicas are ready. Replicas run with
    `interpreter` as deploy_python_closure's do.

    `replica_options` are those of every deployer: labels, num_replicas,
    batch_size (-1: no limit), set_current, timeout_seconds.
    """
    check_input_type(input_type, NUMERIC_INPUT_TYPES, "pytorch")
    saved = save_pytorch_model(model, dtype, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_pytorch_model)
