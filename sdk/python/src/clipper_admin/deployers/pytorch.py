"""Deploying a PyTorch module saved as TorchScript or as a torch.export
program (self-contained either way: a replica needs torch, not the module's
Python class), run by the runtime on the CPU without autograd
(clipper_runtime.loaders.pytorch).

`model` is a torch.export ExportedProgram (torch.export.export with a dynamic
batch dimension, the format torch now recommends), a ScriptModule (from
torch.jit.script or torch.jit.trace, deprecated since torch 2.15), or an
nn.Module, which is scripted here (in eval mode). The batch is one tensor of
`dtype` (float32 by default), a row per input; replicas answer the module's
output, one value or row (a JSON list) per input.

PyPI's torch wheel is CUDA-enabled and pulls about 2.8 GB of wheels (CUDA,
cuDNN, NCCL, triton), needed to import it even without a GPU; the CPU-only
wheels are not on PyPI. CI takes them from a cache outside the checkout
(scripts/python/torch-env.sh) and runs this deployer end to end
(sdk/python/tests/test_e2e_frameworks.py); docs/model-containers.md says
what a user needs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
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


def _saved(save: Callable[[Any, io.BytesIO], None], model: Any) -> bytes:
    buffer = io.BytesIO()
    save(model, buffer)
    return buffer.getvalue()


def _scripted(model: Any, torch: Any) -> Any:
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if not isinstance(model, torch.nn.Module):
        raise ClipperException(
            "model must be a torch.nn.Module, a TorchScript module or a torch.export ExportedProgram, "
            f"got {type(model).__module__}.{type(model).__name__}"
        )
    try:
        return torch.jit.script(model)
    except Exception as error:  # TorchScript's frontend errors name the unsupported construct
        raise ClipperException(
            f"cannot script the {type(model).__name__} ({type(error).__name__}: {error}); export it yourself "
            "with torch.export.export(model, (example_batch,), dynamic_shapes=({0: torch.export.Dim('batch')},)) "
            "and deploy what that returns"
        ) from error


def _check_dynamic_batch(program: Any) -> None:
    """A program exported with a static first dimension takes only batches of
    that many rows: refused here rather than failing each other batch."""
    first_input = program.graph_signature.user_inputs[0]
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name == first_input:
            rows = node.meta["val"].shape[0]
            if isinstance(rows, int):
                raise ClipperException(
                    f"the exported program takes batches of exactly {rows} rows: export it with a dynamic batch "
                    "dimension, dynamic_shapes=({0: torch.export.Dim('batch')},)"
                )
            return


def save_pytorch_model(model: Any, dtype: str = "float32", pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The module saved as a torch.export program or as TorchScript, after
    checking its kind and `dtype`."""
    torch = import_framework("torch", REQUIREMENT, "pytorch")
    from clipper_runtime.loaders import pytorch as loader

    if dtype not in loader.DTYPES:
        raise ClipperException(f"dtype must be one of {', '.join(loader.DTYPES)}, got {dtype!r}")
    if isinstance(model, torch.export.ExportedProgram):
        _check_dynamic_batch(model)
        files = {loader.EXPORTED_FILE: _saved(torch.export.save, model)}
        saved_as = "export"
    else:
        files = {loader.MODEL_FILE: _saved(torch.jit.save, _scripted(model, torch))}
        saved_as = "torchscript"
    return SavedModel(
        framework="pytorch",
        files=files,
        options={"dtype": dtype, "format": saved_as},
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
    batch_size (-1: no limit), set_current, timeout_seconds, resources
    (requests and limits, as in ClipperConnection.deploy_model).
    """
    check_input_type(input_type, NUMERIC_INPUT_TYPES, "pytorch")
    saved = save_pytorch_model(model, dtype, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_pytorch_model)
