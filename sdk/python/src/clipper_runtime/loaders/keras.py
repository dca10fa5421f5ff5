"""Keras 3: a model saved in Keras' own `.keras` format (`model.keras`),
loaded with the backend named in the manifest (jax, tensorflow or torch: the
one it was deployed with, which must be installed here) and answering with
`predict_on_batch`, one value or row per input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.keras"
BACKENDS = ("jax", "tensorflow", "torch")


class KerasModel:
    def __init__(self, model: Any) -> None:
        self._model = model

    def predict(self, inputs: list[Any]) -> list[str]:
        return format_outputs(self._model.predict_on_batch(stack_rows(inputs, np.float32)), len(inputs))


def load(files: dict[str, bytes], options: dict[str, str]) -> KerasModel:
    backend = options.get("backend", "jax")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    # Keras reads its backend once, when it is first imported.
    os.environ["KERAS_BACKEND"] = backend
    import keras

    if keras.backend.backend() != backend:
        raise ValueError(f"keras was already imported with the {keras.backend.backend()} backend, not {backend}")
    # load_model reads a .keras file by its path (a zip archive, by its suffix).
    with tempfile.TemporaryDirectory(prefix="clipper-keras-") as directory:
        path = Path(directory) / MODEL_FILE
        path.write_bytes(model_file(files, MODEL_FILE))
        return KerasModel(keras.saving.load_model(path))
