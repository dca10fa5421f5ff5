"""Deploying a Keras 3 model saved in Keras' own `.keras` format, with the
backend it runs on (jax, tensorflow or torch: the one this process's Keras
uses, set by KERAS_BACKEND) and the package versions, loaded by the runtime
with that backend (clipper_runtime.loaders.keras).

Replicas answer with `predict_on_batch`: one row per input, as a JSON list
(a softmax's probabilities, a regression's values). CI tests it on the JAX
backend (`keras` and `jax[cpu]` from PyPI, about 100 MB of wheels): PyPI's
tensorflow and torch are much larger (see requirements-frameworks.txt).
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
)

# The distributions each backend runs on, recorded with the model when installed here.
BACKEND_DISTRIBUTIONS = {"jax": ["jax", "jaxlib"], "tensorflow": ["tensorflow", "tensorflow-cpu"], "torch": ["torch"]}


def save_keras_model(model: Any, pkgs_to_install: list[str] | None = None) -> SavedModel:
    """The model in the `.keras` format, after checking it is a built Keras model."""
    keras = import_framework("keras", "keras", "keras")
    from clipper_runtime.loaders import keras as loader

    if not isinstance(model, keras.Model):
        raise ClipperException(
            f"model must be a Keras model (keras.Model: Sequential, functional or subclassed), "
            f"got {type(model).__module__}.{type(model).__name__}"
        )
    if not model.built:
        raise ClipperException(
            f"the {type(model).__name__} is not built: give it a keras.Input, or call it on a batch, before deploying"
        )
    backend = keras.backend.backend()
    if backend not in loader.BACKENDS:
        raise ClipperException(
            f"the Keras backend {backend!r} is not one the runtime loads ({', '.join(loader.BACKENDS)})"
        )
    with tempfile.TemporaryDirectory(prefix="clipper-keras-") as directory:
        path = Path(directory) / loader.MODEL_FILE
        try:
            model.save(path)
        except Exception as error:  # a custom layer without get_config, for instance
            raise ClipperException(f"cannot save the model as .keras: {type(error).__name__}: {error}") from error
        data = path.read_bytes()
    return SavedModel(
        framework="keras",
        files={loader.MODEL_FILE: data},
        options={"backend": backend},
        packages=framework_packages(["keras", "h5py", "numpy", *BACKEND_DISTRIBUTIONS[backend]], None, pkgs_to_install),
    )


def deploy_keras_model(
    clipper_conn: ClipperConnection,
    name: str,
    version: str | int,
    input_type: str,
    model: Any,
    pkgs_to_install: list[str] | None = None,
    interpreter: str | None = None,
    **replica_options: Any,
) -> None:
    """Saves `model` as .keras, uploads it and deploys it as model
    `name:version`, waiting until its replicas are ready. Inputs (doubles,
    floats or ints) are the rows of one float32 batch. Replicas run with
    `interpreter` as deploy_python_closure's do.

    `replica_options` are those of every deployer: labels, num_replicas,
    batch_size (-1: no limit), set_current, timeout_seconds, resources
    (requests and limits, as in ClipperConnection.deploy_model).
    """
    check_input_type(input_type, NUMERIC_INPUT_TYPES, "keras")
    saved = save_keras_model(model, pkgs_to_install)
    deploy_saved_model(clipper_conn, name, version, input_type, saved, interpreter, replica_options)


create_endpoint = endpoint_creator(deploy_keras_model)
