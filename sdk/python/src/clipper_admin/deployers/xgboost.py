"""Deploying an XGBoost model: a Booster, XGBClassifier or XGBRegressor saved
in xgboost's own UBJSON format (not pickled), with the package versions, and
loaded by the runtime with xgboost (clipper_runtime.loaders.xgboost).

Replicas answer with `predict` (a Booster: its objective's output, such as a
probability for binary:logistic; a classifier: the class label; a regressor:
the value); a classifier deployed with `method="predict_proba"` answers each
class's probability as a JSON list. PyPI's `xgboost` wheel is CUDA-enabled
and pulls nvidia-nccl; `xgboost-cpu` (the same module, a 5.6 MB wheel) is
enough here and is what requirements-frameworks.txt installs.
"""

from __future__ import annotations

import tempfile
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
    installed_distribution,
)

REQUIREMENT = "xgboost-cpu"


def _model_bytes(model: Any, xgboost: Any) -> bytes:
    if isinstance(model, xgboost.Booster):
        if model.num_boosted_rounds() == 0:
            raise ClipperException("the Booster has no trees: train it before deploying it")
        return bytes(model.save_raw(raw_format="ubj"))
    try:
        model.get_booster()
    except Exception as error:  # sklearn's NotFittedError, without importing sklearn for it
        raise ClipperException(f"the {type(model).__name__} is not fitted: call fit before deploying it") from error
    # The wrapper's save_model keeps its scikit-learn attributes (classes, objective) beside the trees.
    with tempfile.TemporaryDirectory(prefix="clipper-xgboost-") as directory:
        path = Path(directory) / "model.ubj"
        model.save_model(path)
        return path.read_bytes()


def save_xgboost_model(model: Any, method: str = "predict", pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The model in xgboost's UBJSON format, after checking its kind and `method`."""
    xgboost = import_framework("xgboost", REQUIREMENT, "xgboost")
    from clipper_runtime.loaders import xgboost as loader

    # XGBRF* and other subclasses load as the class they extend.
    kind = next((name for name, cls in loader.ESTIMATORS.items() if isinstance(model, cls)), None)
    if kind is None:
        raise ClipperException(
            f"model must be an xgboost Booster, XGBClassifier or XGBRegressor, "
            f"got {type(model).__module__}.{type(model).__name__}"
        )
    if method not in loader.METHODS[kind]:
        raise ClipperException(f"a {kind} is deployed with method {' or '.join(loader.METHODS[kind])}, got {method!r}")
    distributions = installed_distribution(("xgboost-cpu", "xgboost")) + ["numpy"]
    return SavedModel(
        framework="xgboost",
        files={loader.MODEL_FILE: _model_bytes(model, xgboost)},
        options={"estimator": kind, "method": method},
        packages=framework_packages(distributions, None, pkgs_to_install),
    )


def deploy_xgboost_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    model: Any,
    method: str = "predict",
    pkgs_to_install: list[str] | None = None,
    interpreter: str | None = None,
    **replica_options: Any,
) -> None:
    """Saves `model` in xgboost's format, uploads it and deploys it as model
    `name:version`, waiting until its replicas are ready. Inputs (doubles,
    floats or ints) are the rows of one float32 feature matrix per batch.
    Replicas run with `interpreter` as deploy_python_closure's do.

    `replica_options` are those of every deployer: labels, num_replicas,
    batch_size (-1: no limit), set_current, timeout_seconds, resources
    (requests and limits, as in ClipperConnection.deploy_model).
    """
    check_input_type(input_type, NUMERIC_INPUT_TYPES, "xgboost")
    saved = save_xgboost_model(model, method, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_xgboost_model)
