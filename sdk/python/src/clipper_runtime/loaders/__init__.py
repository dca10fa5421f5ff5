"""Framework loaders: a model saved in its framework's own format (joblib for
scikit-learn, xgboost's UBJSON, ONNX, TorchScript, Keras' .keras), loaded by
the runner from a framework artifact's manifest (clipper_runtime.artifact)
and served as an object with `.predict(inputs) -> list[str]`.

Each loader is a module here with `load(files, options)`, imported only when
a model of its framework is loaded, so a runner needs only its model's
framework installed. Outputs are formatted alike for every framework by
`format_outputs`: a number as its shortest round-trip text, a string as it
is, a vector or a table row as a JSON list.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

# The framework named in an artifact's manifest, and the module that loads it.
LOADERS: dict[str, str] = {
    "sklearn": ".sklearn",
    "xgboost": ".xgboost",
    "onnx": ".onnx",
    "pytorch": ".pytorch",
    "keras": ".keras",
}


class FrameworkModel(Protocol):
    def predict(self, inputs: list[Any]) -> list[str]: ...


def load_model(framework: str, files: dict[str, bytes], options: dict[str, str]) -> FrameworkModel:
    """The model of a framework artifact. An unknown framework is a ValueError
    naming the known ones; a framework package missing here is the loader's
    ModuleNotFoundError (which the runner reports with the recorded packages)."""
    module = LOADERS.get(framework)
    if module is None:
        raise ValueError(f"unknown framework {framework!r} in the artifact; this runtime loads {', '.join(LOADERS)}")
    return importlib.import_module(module, __name__).load(files, options)


def model_file(files: dict[str, bytes], name: str) -> bytes:
    data = files.get(name)
    if data is None:
        raise ValueError(f"the artifact has no file {name!r} (it has {', '.join(sorted(files)) or 'none'})")
    return data


def stack_rows(inputs: Sequence[Any], dtype: Any = None) -> np.ndarray:
    """One 2-D array (a row per input) from the runtime's numeric inputs; inputs
    of different lengths are a ValueError naming two of them, since a
    framework model takes a fixed number of features."""
    lengths = {len(row) for row in inputs}
    if len(lengths) > 1:
        shown = sorted(lengths)[:2]
        raise ValueError(f"every input must have the same number of features, got lengths {shown[0]} and {shown[1]}")
    return np.stack(inputs).astype(dtype, copy=False) if dtype is not None else np.stack(inputs)


def format_value(value: Any) -> str:
    """One output: a string as it is, a number as JSON (Python's shortest
    round-trip text, so float(output) is the model's value exactly), anything
    else (a vector, a mapping) as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return json.dumps({str(key): _plain(item) for key, item in value.items()})
    return json.dumps(value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def format_outputs(result: Any, expected: int) -> list[str]:
    """One string per input from a framework's batch result: a 1-D result is
    one value per input, a 2-D one a row per input (as a JSON list)."""
    if isinstance(result, np.ndarray) and result.ndim == 0:
        raise ValueError(f"the model returned one value for {expected} inputs")
    if len(result) != expected:
        raise ValueError(f"the model returned {len(result)} outputs for {expected} inputs")
    return [format_value(value) for value in result]
