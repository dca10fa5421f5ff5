"""The framework deployers' saved models served by closure_runner as real
subprocesses over gRPC (answers equal the local model's), their errors for
a model of the wrong kind or a framework missing here or in the replica's
interpreter, and create_endpoint against the fake Clipper."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import types
import zipfile

import numpy as np
import pytest
from conftest import subprocess_env
from fakes import FakeClipper
from sklearn.datasets import load_iris
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc
from clipper_admin import ClipperConnection, ClipperException, ContainerManager
from clipper_admin.deployers import java as java_deployer
from clipper_admin.deployers import keras as keras_deployer
from clipper_admin.deployers import onnx as onnx_deployer
from clipper_admin.deployers import pytorch as pytorch_deployer
from clipper_admin.deployers import r as r_deployer
from clipper_admin.deployers import sklearn as sklearn_deployer
from clipper_admin.deployers import xgboost as xgboost_deployer
from clipper_admin.deployers._deployment import SavedModel
from clipper_runtime import load_artifact, pack_inputs
from clipper_runtime.artifact import dump_framework_artifact
from clipper_runtime.environment import EXIT_ENVIRONMENT
from clipper_runtime.loaders import format_outputs, load_model

CLOSURE_RUNNER = ["-m", "clipper_runtime.closure_runner"]
HAS_TORCH = importlib.util.find_spec("torch") is not None
# .ci/run makes torch importable (scripts/python/torch-env.sh) and says so: there its absence fails the PyTorch cases.
TORCH_REQUIRED = os.environ.get("CLIPPER_TORCH_TESTS") == "1"


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def serve_saved(saved: SavedModel, tmp_path, runners, channel_to, input_type: str = "doubles"):
    """A closure_runner subprocess serving `saved` as the container-manager runs it."""
    artifact = tmp_path / f"{saved.framework}.artifact"
    artifact.write_bytes(dump_framework_artifact(saved.framework, saved.files, saved.options, saved.packages))
    runner = runners(
        CLOSURE_RUNNER,
        CLIPPER_ARTIFACT=str(artifact),
        CLIPPER_MODEL_PORT="0",
        CLIPPER_MODEL_NAME=saved.framework,
        CLIPPER_INPUT_TYPE=input_type,
    )
    return runner, model_service_pb2_grpc.ModelServiceStub(channel_to(runner.wait_listening()))


def predict(stub, inputs, input_type=data_pb2.INPUT_TYPE_DOUBLES) -> list[data_pb2.Output]:
    request = model_service_pb2.PredictRequest(inputs=pack_inputs(list(inputs), input_type))
    return list(stub.Predict(request, timeout=30).outputs)


def values(outputs) -> list[str]:
    assert [o.error for o in outputs] == [""] * len(outputs)
    return [o.value for o in outputs]


def test_sklearn_pipeline_served_by_the_runner_answers_as_the_local_model(iris, tmp_path, runners, channel_to):
    features, labels = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    saved = sklearn_deployer.save_sklearn_model(model)
    assert saved.packages == sorted(saved.packages)
    for distribution in ("scikit-learn", "joblib", "numpy", "scipy"):
        assert any(p.startswith(f"{distribution}==") for p in saved.packages), saved.packages
    runner, stub = serve_saved(saved, tmp_path, runners, channel_to)
    assert [int(v) for v in values(predict(stub, features))] == model.predict(features).tolist()
    assert runner.terminate() == 0
    assert "the sklearn model recorded packages: joblib==" in runner.stderr()

    probabilities = sklearn_deployer.save_sklearn_model(model, method="predict_proba")
    _, stub = serve_saved(probabilities, tmp_path, runners, channel_to)
    answered = [json.loads(v) for v in values(predict(stub, features[:20]))]
    assert answered == model.predict_proba(features[:20]).tolist()


def test_sklearn_regressor_and_text_pipeline(iris, tmp_path, runners, channel_to):
    features, _ = iris
    regressor = LinearRegression().fit(features[:, :3], features[:, 3])
    _, stub = serve_saved(sklearn_deployer.save_sklearn_model(regressor), tmp_path, runners, channel_to)
    assert [float(v) for v in values(predict(stub, features[:, :3]))] == regressor.predict(features[:, :3]).tolist()

    texts = ["good service", "bad food", "great food", "awful service", "good food", "bad bad"]
    text_model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0, 1, 0])
    _, stub = serve_saved(sklearn_deployer.save_sklearn_model(text_model), tmp_path, runners, channel_to, "strings")
    asked = ["good good", "awful food"]
    answered = values(predict(stub, asked, data_pb2.INPUT_TYPE_STRINGS))
    assert [int(v) for v in answered] == text_model.predict(asked).tolist()


def test_inputs_of_different_lengths_are_per_input_errors_and_the_replica_keeps_serving(
    iris, tmp_path, runners, channel_to
):
    features, labels = iris
    model = LogisticRegression(max_iter=500).fit(features, labels)
    _, stub = serve_saved(sklearn_deployer.save_sklearn_model(model), tmp_path, runners, channel_to)
    outputs = predict(stub, [features[0], features[1][:3]])
    assert [o.error for o in outputs] == [
        "model raised ValueError: every input must have the same number of features, got lengths 3 and 4"
    ] * 2
    assert values(predict(stub, features[:2])) == [str(label) for label in model.predict(features[:2])]


def test_xgboost_classifier_regressor_and_booster(iris, tmp_path, runners, channel_to):
    import xgboost

    features, labels = iris
    rows = features.astype(np.float32)
    classifier = xgboost.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1).fit(features, labels)
    saved = xgboost_deployer.save_xgboost_model(classifier, method="predict_proba")
    assert any(p.startswith(("xgboost-cpu==", "xgboost==")) for p in saved.packages), saved.packages
    _, stub = serve_saved(saved, tmp_path, runners, channel_to)
    assert [json.loads(v) for v in values(predict(stub, features))] == classifier.predict_proba(rows).tolist()
    # The same loader, in this process (a runner per model costs seconds on a busy machine).
    labelled = xgboost_deployer.save_xgboost_model(classifier)
    answered = load_model(labelled.framework, labelled.files, labelled.options).predict(list(features))
    assert [int(v) for v in answered] == classifier.predict(rows).tolist()

    regressor = xgboost.XGBRegressor(n_estimators=8, n_jobs=1).fit(features[:, :3], features[:, 3])
    _, stub = serve_saved(xgboost_deployer.save_xgboost_model(regressor), tmp_path, runners, channel_to)
    answered = [float(v) for v in values(predict(stub, features[:, :3]))]
    assert answered == regressor.predict(rows[:, :3]).tolist()

    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1}, xgboost.DMatrix(features, label=labels == 2), 5
    )
    _, stub = serve_saved(xgboost_deployer.save_xgboost_model(booster), tmp_path, runners, channel_to)
    answered = [float(v) for v in values(predict(stub, features))]
    assert answered == booster.predict(xgboost.DMatrix(rows)).tolist()


def test_onnx_model_exported_by_skl2onnx(iris, tmp_path, runners, channel_to):
    import onnxruntime
    from skl2onnx import to_onnx

    features, labels = iris
    model = LogisticRegression(max_iter=500).fit(features, labels)
    exported = to_onnx(model, features[:1].astype(np.float32), options={"zipmap": False})
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    local_labels, local_probabilities = session.run(None, {"X": features.astype(np.float32)})

    saved = onnx_deployer.save_onnx_model(exported)
    assert saved.options == {"output": "label"}
    _, stub = serve_saved(saved, tmp_path, runners, channel_to)
    assert [int(v) for v in values(predict(stub, features))] == local_labels.tolist()
    assert local_labels.tolist() == model.predict(features).tolist()

    path = tmp_path / "model.onnx"
    path.write_bytes(exported.SerializeToString())
    _, stub = serve_saved(onnx_deployer.save_onnx_model(path, output="probabilities"), tmp_path, runners, channel_to)
    assert [json.loads(v) for v in values(predict(stub, features))] == local_probabilities.tolist()


def test_onnx_model_built_with_the_onnx_helper_api_takes_ints(tmp_path, runners, channel_to):
    from onnx import TensorProto, helper

    # y = x * 3, over int64 rows.
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["y"])],
        "triple",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 2])],
        [helper.make_tensor("three", TensorProto.INT64, [1], [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _, stub = serve_saved(onnx_deployer.save_onnx_model(model), tmp_path, runners, channel_to, "ints")
    assert values(predict(stub, [[1, 2], [-5, 7]], data_pb2.INPUT_TYPE_INTS)) == ["[3, 6]", "[-15, 21]"]


def test_framework_deployers_refuse_models_of_the_wrong_kind(iris):
    features, labels = iris
    sklearn_model = LogisticRegression(max_iter=500).fit(features, labels)
    with pytest.raises(ClipperException, match=r"fitted scikit-learn estimator or Pipeline .*got builtins.dict"):
        sklearn_deployer.save_sklearn_model({"weights": [1, 2]})
    with pytest.raises(ClipperException, match=r"the LogisticRegression is not fitted: call fit"):
        sklearn_deployer.save_sklearn_model(LogisticRegression())
    with pytest.raises(ClipperException, match=r"this LinearRegression has no method predict_proba"):
        sklearn_deployer.save_sklearn_model(LinearRegression().fit(features, labels), method="predict_proba")
    with pytest.raises(ClipperException, match=r"method must be one of predict, predict_proba.*got 'score'"):
        sklearn_deployer.save_sklearn_model(sklearn_model, method="score")
    with pytest.raises(ClipperException, match=r"own module\(s\) test_frameworks, which joblib saves by reference"):
        sklearn_deployer.save_sklearn_model(make_pipeline(FunctionTransformer(lambda x: x), sklearn_model))
    sklearn_model.lock = threading.Lock()  # an attribute pickle cannot save
    with pytest.raises(ClipperException, match=r"cannot save the model with joblib: TypeError: cannot pickle"):
        sklearn_deployer.save_sklearn_model(sklearn_model)
    del sklearn_model.lock
    with pytest.raises(ClipperException, match=r"must be an xgboost Booster, XGBClassifier or XGBRegressor.*sklearn"):
        xgboost_deployer.save_xgboost_model(sklearn_model)
    import xgboost

    with pytest.raises(ClipperException, match=r"the XGBClassifier is not fitted"):
        xgboost_deployer.save_xgboost_model(xgboost.XGBClassifier())
    with pytest.raises(ClipperException, match=r"a XGBRegressor is deployed with method predict, got 'predict_proba'"):
        xgboost_deployer.save_xgboost_model(xgboost.XGBRegressor(n_estimators=2).fit(features, labels), "predict_proba")
    with pytest.raises(ClipperException, match=r"onnx.ModelProto, the bytes of one or the path .*got builtins.int"):
        onnx_deployer.save_onnx_model(3)
    with pytest.raises(ClipperException, match=r"onnxruntime cannot load the model: "):
        onnx_deployer.save_onnx_model(b"not an onnx model")


def test_sklearn_deployer_refuses_a_model_with_code_of_a_local_module(iris, tmp_path, monkeypatch):
    """joblib saves a class by reference: a transformer defined in the user's own
    module (not installed) would not import in the replica."""
    features, labels = iris
    source = tmp_path / "my_features.py"
    source.write_text(
        "from sklearn.base import BaseEstimator, TransformerMixin\n"
        "class Doubler(TransformerMixin, BaseEstimator):\n"
        "    def fit(self, X, y=None):\n"
        "        return self\n"
        "    def transform(self, X):\n"
        "        return X * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_features

    model = make_pipeline(my_features.Doubler(), LogisticRegression(max_iter=500)).fit(features, labels)
    with pytest.raises(ClipperException, match=r"code of your own module\(s\) my_features, which joblib saves by ref"):
        sklearn_deployer.save_sklearn_model(model)
    monkeypatch.delitem(sys.modules, "my_features")


def test_a_framework_missing_here_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` finds: ImportError
    with pytest.raises(ClipperException, match=r"deployers.onnx needs the package onnxruntime in this environment \("):
        onnx_deployer.save_onnx_model(b"")
    monkeypatch.setitem(sys.modules, "xgboost", None)
    with pytest.raises(ClipperException, match=r"deployers.xgboost needs the package xgboost-cpu .*pip install xgb"):
        xgboost_deployer.save_xgboost_model(object())


def test_pytorch_without_torch_here_or_in_the_replica(tmp_path, runners, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ClipperException, match=r"deployers.pytorch needs the package torch in this environment"):
        pytorch_deployer.save_pytorch_model(object())
    # A TorchScript model served by an interpreter without torch: the replica names the module and the packages.
    # Where torch is installed, a `torch` package first on PYTHONPATH fails its import as a missing torch does.
    hidden = tmp_path / "without-torch" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    saved = SavedModel("pytorch", {"model.pt": b"\x00"}, {"dtype": "float32"}, ["torch==2.15.0"])
    artifact = tmp_path / "torch.artifact"
    artifact.write_bytes(dump_framework_artifact(saved.framework, saved.files, saved.options, saved.packages))
    runner = runners(
        CLOSURE_RUNNER,
        CLIPPER_ARTIFACT=str(artifact),
        CLIPPER_MODEL_PORT="0",
        PYTHONPATH=os.pathsep.join([str(hidden.parent), subprocess_env()["PYTHONPATH"]]),
    )
    assert runner.process.wait(timeout=60) == EXIT_ENVIRONMENT
    last = runner.stderr().strip().splitlines()[-1]
    assert last.startswith("closure_runner: cannot load the pytorch model: it needs the module 'torch'"), last
    assert "the pytorch model records the packages torch==2.15.0" in last


@pytest.mark.skipif(
    not HAS_TORCH and not TORCH_REQUIRED,
    reason="torch is not installed: scripts/python/torch-env.sh .venv (CLIPPER_TORCH_TESTS=1 makes this a failure)",
)
def test_pytorch_module_scripted_traced_and_exported(tmp_path, runners, channel_to):
    assert HAS_TORCH, "CLIPPER_TORCH_TESTS=1, but torch is not importable here: run scripts/python/torch-env.sh .venv"
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    rows = np.random.default_rng(0).normal(size=(16, 4))
    with torch.inference_mode():
        local = module(torch.from_numpy(rows).float()).numpy().tolist()
    example = torch.zeros(2, 4)
    exported = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    for model, saved_as in [
        (module, "torchscript"),
        (torch.jit.trace(module, example), "torchscript"),
        (exported, "export"),
    ]:
        saved = pytorch_deployer.save_pytorch_model(model)
        assert saved.options == {"dtype": "float32", "format": saved_as}
        _, stub = serve_saved(saved, tmp_path, runners, channel_to)
        assert [json.loads(v) for v in values(predict(stub, rows))] == local

    with pytest.raises(ClipperException, match=r"takes batches of exactly 2 rows: export it with a dynamic batch"):
        pytorch_deployer.save_pytorch_model(torch.export.export(module, (example,)))
    with pytest.raises(ClipperException, match=r"dtype must be one of float32, float64, int64, got 'half'"):
        pytorch_deployer.save_pytorch_model(module, dtype="half")
    with pytest.raises(ClipperException, match=r"must be a torch.nn.Module, a TorchScript module or a torch.export"):
        pytorch_deployer.save_pytorch_model(LogisticRegression())


def keras_module(monkeypatch):
    """Keras on JAX (what requirements-frameworks.txt installs); Keras reads KERAS_BACKEND when first imported."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    import keras

    assert keras.backend.backend() == "jax"
    return keras


def test_keras_model_on_jax(iris, tmp_path, runners, channel_to, monkeypatch):
    keras = keras_module(monkeypatch)
    features, labels = iris
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(features, labels, epochs=2, verbose=0)
    saved = keras_deployer.save_keras_model(model)
    assert saved.options == {"backend": "jax"}
    assert {p.split("==")[0] for p in saved.packages} >= {"keras", "jax", "jaxlib", "numpy", "h5py"}
    _, stub = serve_saved(saved, tmp_path, runners, channel_to)
    local = model.predict_on_batch(features.astype(np.float32)).tolist()
    assert [json.loads(v) for v in values(predict(stub, features))] == local

    with pytest.raises(ClipperException, match=r"must be a Keras model \(keras.Model.*got sklearn"):
        keras_deployer.save_keras_model(LogisticRegression())
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ClipperException, match=r"the Sequential is not built: give it a keras.Input"):
        keras_deployer.save_keras_model(unbuilt)


def test_unknown_framework_in_an_artifact_fails_the_replica_naming_the_known_ones(tmp_path, runners):
    artifact = tmp_path / "caffe.artifact"
    artifact.write_bytes(dump_framework_artifact("caffe", {}, {}, []))
    runner = runners(CLOSURE_RUNNER, CLIPPER_ARTIFACT=str(artifact), CLIPPER_MODEL_PORT="0")
    assert runner.process.wait(timeout=60) == EXIT_ENVIRONMENT
    assert "unknown framework 'caffe' in the artifact; this runtime loads sklearn, xgboost, onnx, pytorch, keras" in (
        runner.stderr()
    )


def test_format_outputs():
    assert format_outputs(np.array([1, 2]), 2) == ["1", "2"]
    assert format_outputs(np.array([0.1, np.float32(0.5)]), 2) == ["0.1", "0.5"]
    assert format_outputs(np.array(["a", "b"]), 2) == ["a", "b"]
    assert format_outputs(np.array([[1.5, 2.0]]), 1) == ["[1.5, 2.0]"]
    assert format_outputs([{"x": np.float32(0.25)}], 1) == ['{"x": 0.25}']
    with pytest.raises(ValueError, match="the model returned 1 outputs for 2 inputs"):
        format_outputs(np.array([1]), 2)
    with pytest.raises(ValueError, match="unknown framework 'caffe'"):
        load_model("caffe", {}, {})


@pytest.fixture
def fake_conn():
    clipper = FakeClipper()
    connection = ClipperConnection(
        ContainerManager(registry_port=clipper.registry_port, container_manager_port=clipper.container_manager_port)
    )
    connection.connect(timeout_seconds=5)
    yield clipper, connection
    connection.close()
    clipper.stop()


def test_create_endpoint_of_each_deployer_registers_deploys_and_links(iris, fake_conn, tmp_path):
    fake, conn = fake_conn
    features, labels = iris
    sklearn_deployer.create_endpoint(
        conn, "iris", "doubles", LogisticRegression(max_iter=500).fit(features, labels), num_replicas=2
    )
    jar = tmp_path / "model.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("com/x/M.class", b"\xca\xfe\xba\xbe")
    java_deployer.create_endpoint(conn, "java", "doubles", jar, "com.x.M", jvm_options=["-Xmx64m"], version=3)
    script = tmp_path / "model.R"
    script.write_text("predict <- function(inputs) inputs\n")
    r_deployer.create_endpoint(conn, "r", "strings", script, default_output="none", packages=["jsonlite"])

    assert sorted(fake.registry.apps) == ["iris", "java", "r"]
    assert fake.registry.apps["r"].default_output == "none"
    deploys = {r.model.name: r.model for n, r in fake.container_manager.requests if n == "DeployModel"}
    assert deploys["iris"].desired_replicas == 2
    assert (deploys["java"].version, list(deploys["java"].runtime.java_class.jvm_options)) == ("3", ["-Xmx64m"])
    assert list(deploys["r"].runtime.r_function.packages) == ["jsonlite"]
    links = [(r.application, r.model_name) for n, r in fake.registry.requests if n == "LinkModel"]
    assert links == [("iris", "iris"), ("java", "java"), ("r", "r")]

    # The sklearn model went as a framework artifact with its packages, loaded here as a replica would.
    runtime = deploys["iris"].runtime.python_closure
    assert any(p.startswith("scikit-learn==") for p in runtime.packages)
    model, metadata = load_artifact(fake.container_manager.artifacts[runtime.artifact_digest])
    assert metadata.framework == "sklearn" and list(runtime.packages) == metadata.packages
    assert model.predict(list(features[:3])) == [str(v) for v in labels[:3]]


def test_framework_deployers_refuse_an_input_type_they_cannot_take(fake_conn):
    _, conn = fake_conn
    with pytest.raises(ClipperException, match=r"deployers.xgboost takes input_type doubles or floats or ints"):
        xgboost_deployer.deploy_xgboost_model(conn, "m", 1, "strings", types.SimpleNamespace())
    with pytest.raises(ClipperException, match=r"interpreter must be an absolute path \(or empty\), got 'python3'"):
        onnx_deployer.deploy_onnx_model(conn, "m", 1, "doubles", _identity_model_bytes(), interpreter="python3")


def _identity_model_bytes() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
