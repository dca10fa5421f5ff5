"""XGBoost: a Booster, XGBClassifier or XGBRegressor saved in xgboost's own
UBJSON format (`model.ubj`), rebuilt as the class named in the manifest and
answering with its `predict` (or `predict_proba`, for a classifier)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost

from . import format_outputs, model_file, stack_rows

MODEL_FILE = "model.ubj"
ESTIMATORS = {
    "Booster": xgboost.Booster,
    "XGBClassifier": xgboost.XGBClassifier,
    "XGBRegressor": xgboost.XGBRegressor,
}
# What each kind answers with: a classifier also each class's probability.
METHODS = {"Booster": ("predict",), "XGBClassifier": ("predict", "predict_proba"), "XGBRegressor": ("predict",)}


class XGBoostModel:
    def __init__(self, model: Any, method: str) -> None:
        self._booster = isinstance(model, xgboost.Booster)
        self._method = getattr(model, method)

    def predict(self, inputs: list[Any]) -> list[str]:
        features = stack_rows(inputs, np.float32)
        batch = xgboost.DMatrix(features) if self._booster else features
        return format_outputs(self._method(batch), len(inputs))


def load(files: dict[str, bytes], options: dict[str, str]) -> XGBoostModel:
    kind = options.get("estimator", "Booster")
    method = options.get("method", "predict")
    estimator = ESTIMATORS.get(kind)
    if estimator is None:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {kind!r}")
    if method not in METHODS[kind]:
        raise ValueError(f"a {kind} answers {' or '.join(METHODS[kind])}, not {method}")
    model = estimator()
    model.load_model(bytearray(model_file(files, MODEL_FILE)))
    return XGBoostModel(model, method)
