"""PyTorch: a module saved as TorchScript (`model.pt`, from torch.jit.script
or torch.jit.trace), run in eval mode without autograd on the CPU. The batch
is one float tensor (a row per input, as the dtype in the manifest); the
answer is the module's output, one value or row per input."""

from __future__ import annotations

import io
from typing import Any

import torch

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.pt"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


class TorchScriptModel:
    def __init__(self, module: torch.jit.ScriptModule, dtype: torch.dtype) -> None:
        self._module = module.eval()
        self._dtype = dtype

    def predict(self, inputs: list[Any]) -> list[str]:
        batch = torch.from_numpy(stack_rows(inputs)).to(self._dtype)
        with torch.inference_mode():
            result = self._module(batch)
        if not isinstance(result, torch.Tensor):
            raise ValueError(f"the module returned {type(result).__name__}, expected a tensor")
        return format_outputs(result.numpy(), len(inputs))


def load(files: dict[str, bytes], options: dict[str, str]) -> TorchScriptModel:
    name = options.get("dtype", "float32")
    dtype = DTYPES.get(name)
    if dtype is None:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    module = torch.jit.load(io.BytesIO(model_file(files, MODEL_FILE)), map_location="cpu")
    return TorchScriptModel(module, dtype)
