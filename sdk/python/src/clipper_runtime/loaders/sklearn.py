"""scikit-learn: a fitted estimator or Pipeline saved with joblib
(`model.joblib`), answering with the method named in the manifest
(`predict`, `predict_proba`, `predict_log_proba` or `decision_function`)."""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.joblib"
METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


class SklearnModel:
    def __init__(self, estimator: Any, method: str) -> None:
        self._method = getattr(estimator, method)

    def predict(self, inputs: list[Any]) -> list[str]:
        # Numeric inputs are rows of a feature matrix; strings and bytes go as a list (a text pipeline's input).
        batch = stack_rows(inputs) if isinstance(inputs[0], np.ndarray) else inputs
        return format_outputs(self._method(batch), len(inputs))


def load(files: dict[str, bytes], options: dict[str, str]) -> SklearnModel:
    method = options.get("method", "predict")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    estimator = joblib.load(io.BytesIO(model_file(files, MODEL_FILE)))
    if not callable(getattr(estimator, method, None)):
        raise ValueError(f"the saved {type(estimator).__name__} has no method {method}")
    return SklearnModel(estimator, method)
