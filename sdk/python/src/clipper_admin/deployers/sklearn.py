"""Deploying a scikit-learn model: a fitted estimator or Pipeline saved with
joblib (not pickled inside a closure), with the package versions it needs,
and loaded by the runtime with joblib (clipper_runtime.loaders.sklearn).

Replicas answer with `model.predict` by default, one output per input (a
class label or a value); `method="predict_proba"` (or `"predict_log_proba"`,
`"decision_function"`) answers that method's row per input as a JSON list,
in the order of `model.classes_`, as MLServer's scikit-learn runtime answers
the output it is asked for.
"""

from __future__ import annotations

import io
from typing import Any

from ..connection import ClipperConnection
from ..exceptions import ClipperException
from ._deployment import SavedModel, deploy_saved_model, endpoint_creator, framework_packages, import_framework
from .closure_dependencies import local_modules

# Recorded with the model: what a joblib-saved estimator needs to load (its arrays are numpy's and scipy's).
DISTRIBUTIONS = ["scikit-learn", "joblib", "numpy", "scipy"]


def save_sklearn_model(model: Any, method: str = "predict", pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The model saved with joblib, after checking it is a fitted scikit-learn
    estimator with `method` and that a replica can import every class in it."""
    import_framework("sklearn", "scikit-learn", "sklearn")
    joblib = import_framework("joblib", "joblib", "sklearn")
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from clipper_runtime.loaders import sklearn as loader

    if not isinstance(model, BaseEstimator):
        raise ClipperException(
            f"model must be a fitted scikit-learn estimator or Pipeline (a sklearn.base.BaseEstimator), "
            f"got {type(model).__module__}.{type(model).__name__}"
        )
    if method not in loader.METHODS:
        raise ClipperException(f"method must be one of {', '.join(loader.METHODS)}, got {method!r}")
    if not callable(getattr(model, method, None)):
        raise ClipperException(f"this {type(model).__name__} has no method {method}")
    try:
        check_is_fitted(model)
    except NotFittedError as error:
        raise ClipperException(f"the {type(model).__name__} is not fitted: call fit before deploying it") from error
    local = [module.__name__ for module in local_modules(model)]
    if local:
        raise ClipperException(
            f"the model uses code of your own module(s) {', '.join(local)}, which joblib saves by reference and a "
            "replica cannot import: install that code as a package, or deploy the model with "
            "deployers.python.deploy_python_closure (which pickles it by value)"
        )
    buffer = io.BytesIO()
    try:
        joblib.dump(model, buffer)
    except Exception as error:
        raise ClipperException(f"cannot save the model with joblib: {type(error).__name__}: {error}") from error
    return SavedModel(
        framework="sklearn",
        files={loader.MODEL_FILE: buffer.getvalue()},
        options={"method": method},
        packages=framework_packages(DISTRIBUTIONS, model, pkgs_to_install),
    )


def deploy_sklearn_model(
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
    """Saves the fitted `model` with joblib, uploads it and deploys it as model
    `name:version`, waiting until its replicas are ready.

    Numeric inputs (doubles, floats, ints) reach the model as the rows of one
    feature matrix per batch; strings as a list (a text pipeline's input).
    Replicas run with `interpreter` as deploy_python_closure's do (by default
    this process's own Python, which has scikit-learn).
    `replica_options` are those of every deployer: labels, num_replicas,
    batch_size (-1: no limit), set_current, timeout_seconds, resources
    (requests and limits, as in ClipperConnection.deploy_model).
    """
    saved = save_sklearn_model(model, method, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_sklearn_model)
