"""The framework deployers against the real system (`clipper up`), run with
CLIPPER_E2E=1: a small model of each framework trained here, deployed, and
queried over REST; every answer equals the local model's prediction. The
PyTorch case runs where torch is importable, and fails without it when
CLIPPER_TORCH_TESTS=1 (.ci/run: scripts/python/torch-env.sh gives CI's venv
PyPI's torch from a cache outside the checkout)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys

import numpy as np
import pytest
from conftest import local_clipper
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from test_e2e_quickstart import query, query_until_answered

from clipper_admin import ClipperConnection, ClipperException
from clipper_admin.deployers import keras as keras_deployer
from clipper_admin.deployers import onnx as onnx_deployer
from clipper_admin.deployers import pytorch as pytorch_deployer
from clipper_admin.deployers import sklearn as sklearn_deployer
from clipper_admin.deployers import xgboost as xgboost_deployer

pytestmark = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")

SLO_MICROS = 5_000_000
# Inputs asked through the system per model: every tenth iris flower, each class.
ASKED = slice(0, None, 10)


def each_row(predict, rows: np.ndarray) -> list:
    """The local prediction of each row alone, as the system is asked here (one
    query at a time: batches of one). A batch of rows may differ from it in the
    last bits, as BLAS and onnxruntime sum in another order."""
    return [predict(row[np.newaxis])[0].tolist() for row in rows]


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    with local_clipper(tmp_path_factory.mktemp("frameworks") / "clipper-data") as connection:
        yield connection


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def answers(conn: ClipperConnection, app: str, rows: np.ndarray) -> list:
    """The system's output for each row, the first once a model answers."""
    first = query_until_answered(conn.get_query_addr(), app, rows[0].tolist())
    rest = [query(conn.get_query_addr(), app, row.tolist()) for row in rows[1:]]
    for answer in [first, *rest]:
        assert answer["default"] is False, answer
        assert answer["models"] == [f"{app}:1"], answer
    return [answer["output"] for answer in [first, *rest]]


def test_sklearn_pipeline_through_create_endpoint(conn, iris):
    features, labels = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    sklearn_deployer.create_endpoint(
        conn, "iris-sklearn", "doubles", model, default_output="-1", slo_micros=SLO_MICROS, method="predict_proba"
    )
    assert answers(conn, "iris-sklearn", features[ASKED]) == each_row(model.predict_proba, features[ASKED])
    # A framework model is a Python artifact: the container-manager runs it as it runs a closure.
    assert conn.get_model_info("iris-sklearn", 1)["runtime"] == "python_closure"


def test_xgboost_classifier(conn, iris):
    import xgboost

    features, labels = iris
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(features, labels)
    conn.register_application("iris-xgboost", "doubles", "-1", SLO_MICROS)
    xgboost_deployer.deploy_xgboost_model(conn, "iris-xgboost", 1, "doubles", model)
    conn.link_model_to_app("iris-xgboost", "iris-xgboost")
    assert answers(conn, "iris-xgboost", features[ASKED]) == each_row(model.predict, features[ASKED])


def test_onnx_model_exported_from_sklearn(conn, iris):
    import onnxruntime
    from skl2onnx import to_onnx

    features, labels = iris
    rows = features.astype(np.float32)
    exported = to_onnx(LogisticRegression(max_iter=500).fit(features, labels), rows[:1], options={"zipmap": False})
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    local = each_row(lambda row: session.run(["probabilities"], {"X": row})[0], rows[ASKED])
    onnx_deployer.create_endpoint(
        conn, "iris-onnx", "doubles", exported, default_output="-1", slo_micros=SLO_MICROS, output="probabilities"
    )
    assert answers(conn, "iris-onnx", features[ASKED]) == local


HAS_TORCH = importlib.util.find_spec("torch") is not None
TORCH_REQUIRED = os.environ.get("CLIPPER_TORCH_TESTS") == "1"


@pytest.mark.skipif(
    not HAS_TORCH and not TORCH_REQUIRED,
    reason="torch is not installed: scripts/python/torch-env.sh .venv (CLIPPER_TORCH_TESTS=1 makes this a failure)",
)
def test_pytorch_module(conn, iris):
    assert HAS_TORCH, "CLIPPER_TORCH_TESTS=1, but torch is not importable here: run scripts/python/torch-env.sh .venv"
    import torch

    features, _ = iris
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).eval()
    with torch.inference_mode():
        local = each_row(lambda row: module(torch.from_numpy(row).float()).numpy(), features[ASKED])
    batch = torch.export.Dim("batch")
    exported = torch.export.export(module, (torch.zeros(2, 4),), dynamic_shapes=({0: batch},))
    pytorch_deployer.create_endpoint(
        conn, "iris-torch", "doubles", exported, default_output="-1", slo_micros=SLO_MICROS
    )
    assert answers(conn, "iris-torch", features[ASKED]) == local
    # Served by the deploying interpreter, which has the recorded torch: no 2.8 GB environment was built for it.
    [lines] = conn.get_model_logs("iris-torch", 1).values()
    recorded = f"python: {sys.executable}, the interpreter recorded with the model (it has every recorded package: "
    pinned = f"torch=={importlib.metadata.version('torch')}"
    assert any(recorded in line and pinned in line for line in lines), lines[-20:]


def test_keras_model_on_jax(conn, iris, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # read by Keras when first imported
    import keras

    features, labels = iris
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, epochs=2, verbose=0)
    local = each_row(lambda row: model.predict_on_batch(row.astype(np.float32)), features[ASKED])
    keras_deployer.create_endpoint(conn, "iris-keras", "doubles", model, default_output="-1", slo_micros=SLO_MICROS)
    assert answers(conn, "iris-keras", features[ASKED]) == local


def test_redeploying_the_same_model_changes_nothing_and_a_wrong_kind_is_refused(conn, iris):
    """After test_xgboost_classifier: the same version again is accepted (the
    artifact is the same bytes); a model of the wrong kind never reaches the system."""
    import xgboost

    features, labels = iris
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(features, labels)
    xgboost_deployer.deploy_xgboost_model(conn, "iris-xgboost", 1, "doubles", model)
    with pytest.raises(ClipperException, match=r"must be an xgboost Booster, XGBClassifier or XGBRegressor"):
        xgboost_deployer.deploy_xgboost_model(conn, "iris-xgboost", 2, "doubles", LogisticRegression())
    assert conn.get_current_model_version("iris-xgboost") == "1"
