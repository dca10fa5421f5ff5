"""PyTorch: a module saved as TorchScript (`model.pt`, from torch.jit.script
or torch.jit.trace; run in eval mode) or a torch.export program (`model.pt2`,
run as exported), without autograd on the CPU. The batch is one tensor (a
row per input, as the dtype in the manifest); the answer is the module's
output, one value or row per input."""

from __future__ import annotations

import io
from typing import Any

import torch

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.pt"
EXPORTED_FILE = "model.pt2"
# How the module was saved: the manifest's "format".
FORMATS = ("torchscript", "export")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


class TorchModel:
    def __init__(self, module: torch.nn.Module, dtype: torch.dtype) -> None:
        self._module = module
        self._dtype = dtype

    def predict(self, inputs: list[Any]) -> list[str]:
        batch = torch.from_numpy(stack_rows(inputs)).to(self._dtype)
        with torch.inference_mode():
            result = self._module(batch)
        if not isinstance(result, torch.Tensor):
            raise ValueError(f"the module returned {type(result).__name__}, expected a tensor")
        return format_outputs(result.numpy(), len(inputs))


def load(files: dict[str, bytes], options: dict[str, str]) -> TorchModel:
    name = options.get("dtype", "float32")
    dtype = DTYPES.get(name)
    if dtype is None:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    saved_as = options.get("format", "torchscript")
    if saved_as not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {saved_as!r}")
    if saved_as == "export":
        # An exported program keeps the train/eval mode it was exported in (its module has no eval()).
        program = torch.export.load(io.BytesIO(model_file(files, EXPORTED_FILE)))
        return TorchModel(program.module(), dtype)
    module = torch.jit.load(io.BytesIO(model_file(files, MODEL_FILE)), map_location="cpu")
    return TorchModel(module.eval(), dtype)
