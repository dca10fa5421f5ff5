"""closure_runner and file_runner as real subprocesses, called over gRPC."""

from __future__ import annotations

import pickle
import textwrap

import cloudpickle
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc
from clipper_admin.deployers.python import serialize_closure
from clipper_runtime import pack_inputs
from clipper_runtime.artifact import ARTIFACT_FORMAT

CLOSURE_RUNNER = ["-m", "clipper_runtime.closure_runner"]


@pytest.fixture(scope="module")
def iris():
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    return features, model


class IrisClassifier:
    """A model object defined in a test module: pickled by value."""

    def __init__(self, model):
        self.model = model

    def predict(self, inputs):
        return [str(label) for label in self.model.predict(np.stack(inputs))]


def predict_all(channel, features) -> list[data_pb2.Output]:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = model_service_pb2.PredictRequest(inputs=pack_inputs(list(features), data_pb2.INPUT_TYPE_DOUBLES))
    return list(stub.Predict(request, timeout=20).outputs)


def runner_env(artifact_path, **extra):
    env = {
        "CLIPPER_ARTIFACT": str(artifact_path),
        "CLIPPER_MODEL_PORT": "0",
        "CLIPPER_MODEL_NAME": "iris",
        "CLIPPER_MODEL_VERSION": "2",
        "CLIPPER_INPUT_TYPE": "doubles",
    }
    env.update(extra)
    return env


@pytest.mark.parametrize("kind", ["closure", "object"])
def test_closure_runner_serves_a_pickled_sklearn_model(iris, tmp_path, runners, channel_to, kind):
    features, model = iris
    if kind == "closure":

        def predict(inputs):
            return [str(label) for label in model.predict(np.stack(inputs))]

        func = predict
    else:
        func = IrisClassifier(model)
    closure = serialize_closure(func)
    assert "scikit-learn==" + __import__("sklearn").__version__ in closure.packages
    artifact = tmp_path / "closure.pkl"
    artifact.write_bytes(closure.data)

    runner = runners(CLOSURE_RUNNER, **runner_env(artifact))
    port = runner.wait_listening()
    channel = channel_to(port)

    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    outputs = predict_all(channel, features)
    assert [o.value for o in outputs] == [str(label) for label in model.predict(features)]
    metadata = model_service_pb2_grpc.ModelServiceStub(channel).GetMetadata(
        model_service_pb2.GetMetadataRequest(), timeout=5
    )
    assert (metadata.model_name, metadata.model_version) == ("iris", "2")

    assert runner.terminate() == 0


def test_closure_runner_warns_when_python_versions_differ(tmp_path, runners, channel_to):
    artifact = tmp_path / "old.pkl"
    artifact.write_bytes(
        pickle.dumps(
            {
                "format": ARTIFACT_FORMAT,
                "python_version": "3.1",
                "packages": [],
                "closure": cloudpickle.dumps(lambda xs: [str(len(x)) for x in xs]),
            }
        )
    )
    runner = runners(CLOSURE_RUNNER, **runner_env(artifact, CLIPPER_INPUT_TYPE="strings"))
    channel = channel_to(runner.wait_listening())
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = model_service_pb2.PredictRequest(
        inputs=data_pb2.Inputs(type=data_pb2.INPUT_TYPE_STRINGS, strings=["abc"])
    )
    assert [o.value for o in stub.Predict(request, timeout=10).outputs] == ["3"]
    assert runner.terminate() == 0
    assert "pickled by Python 3.1 but this runner is Python 3." in runner.stderr()


def test_closure_runner_without_artifact_exits_with_a_message(runners):
    runner = runners(CLOSURE_RUNNER, CLIPPER_ARTIFACT="", CLIPPER_MODEL_PORT="0")
    assert runner.process.wait(timeout=30) == 2
    assert "CLIPPER_ARTIFACT is not set" in runner.stderr()


def test_closure_runner_with_corrupt_artifact_exits_with_the_error(tmp_path, runners):
    artifact = tmp_path / "corrupt.pkl"
    artifact.write_bytes(b"not a pickle")
    runner = runners(CLOSURE_RUNNER, **runner_env(artifact))
    assert runner.process.wait(timeout=30) == 1
    assert "cannot load the closure artifact" in runner.stderr()


def test_closure_runner_rejects_a_bad_input_type(tmp_path, runners):
    artifact = tmp_path / "closure.pkl"
    artifact.write_bytes(serialize_closure(lambda xs: xs).data)
    runner = runners(CLOSURE_RUNNER, **runner_env(artifact, CLIPPER_INPUT_TYPE="matrix"))
    assert runner.process.wait(timeout=30) == 2
    assert "CLIPPER_INPUT_TYPE: invalid input type 'matrix'" in runner.stderr()


def test_file_runner_serves_a_function_from_a_file(tmp_path, runners, channel_to):
    (tmp_path / "helpers.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    model_file = tmp_path / "my-model.py"
    model_file.write_text(
        textwrap.dedent(
            """
            from helpers import shout

            def predict(inputs):
                return [shout(x) for x in inputs]
            """
        )
    )
    runner = runners(
        ["-m", "clipper_runtime.file_runner", str(model_file), "predict", "--input-type", "strings", "--port", "0"]
    )
    channel = channel_to(runner.wait_listening())
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = model_service_pb2.PredictRequest(
        inputs=data_pb2.Inputs(type=data_pb2.INPUT_TYPE_STRINGS, strings=["hi", "yo"])
    )
    assert [o.value for o in stub.Predict(request, timeout=10).outputs] == ["HI!", "YO!"]
    metadata = stub.GetMetadata(model_service_pb2.GetMetadataRequest(), timeout=5)
    assert metadata.model_name == "my-model"
    assert runner.terminate() == 0


def test_file_runner_reports_a_missing_function(tmp_path, runners):
    model_file = tmp_path / "model.py"
    model_file.write_text("x = 1\n")
    runner = runners(["-m", "clipper_runtime.file_runner", str(model_file), "predict", "--port", "0"])
    assert runner.process.wait(timeout=30) == 2
    assert "defines no 'predict'" in runner.stderr()
