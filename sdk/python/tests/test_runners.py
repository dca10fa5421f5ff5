"""closure_runner and file_runner as real subprocesses, called over gRPC."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import numpy as np
import pytest
import tomllib
from conftest import SDK_ROOT, subprocess_env
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc
from clipper_admin.deployers.python import serialize_closure
from clipper_runtime import pack_inputs
from clipper_runtime.artifact import ARTIFACT_FORMAT, dump_artifact
from clipper_runtime.environment import EXIT_ENVIRONMENT, RUNTIME_REQUIREMENTS

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


def test_closure_runner_names_a_module_the_closure_needs_and_this_interpreter_lacks(tmp_path, runners, monkeypatch):
    """A closure that references an installed package (pickled by reference)
    run where that package is missing: exit EXIT_ENVIRONMENT, and the last
    line (what a failed deploy quotes) names the module and what to do."""
    package_dir = tmp_path / "elsewhere"
    package_dir.mkdir()
    (package_dir / "clipper_test_absent_pkg.py").write_text("class Scaler:\n    factor = 2\n")
    monkeypatch.syspath_prepend(str(package_dir))
    import clipper_test_absent_pkg

    scaler = clipper_test_absent_pkg.Scaler()
    artifact = tmp_path / "closure.pkl"
    # Importable here, so pickled by reference (as an installed package is); the runner cannot import it.
    artifact.write_bytes(dump_artifact(lambda xs: [str(scaler.factor * len(x)) for x in xs], ["absent-pkg==1.0"]))
    monkeypatch.delitem(sys.modules, "clipper_test_absent_pkg")
    runner = runners(CLOSURE_RUNNER, **runner_env(artifact))
    assert runner.process.wait(timeout=30) == EXIT_ENVIRONMENT
    stderr = runner.stderr()
    assert "ModuleNotFoundError: No module named 'clipper_test_absent_pkg'" in stderr  # the traceback, for the log
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("closure_runner: cannot load the closure: it needs the module 'clipper_test_absent_pkg'")
    assert f"which the interpreter {sys.executable} (Python 3." in last
    assert "the closure records the packages absent-pkg==1.0" in last
    assert "deploy it from the environment it was written in" in last


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """An interpreter with nothing installed, as a system python3 on a fresh machine."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def test_closure_runner_in_an_interpreter_without_the_runtime_dependencies_says_what_to_install(tmp_path, bare_python):
    artifact = tmp_path / "closure.pkl"
    artifact.write_bytes(serialize_closure(lambda xs: xs).data)
    completed = subprocess.run(
        [str(bare_python), *CLOSURE_RUNNER],
        env=subprocess_env(**runner_env(artifact)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == EXIT_ENVIRONMENT
    message = completed.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(
        f"closure_runner: the interpreter {bare_python} (Python 3.{sys.version_info.minor}) lacks the Clipper "
        "model runtime's dependencies (grpc: No module named 'grpc'; "
    )
    install = f"{bare_python} -m pip install 'grpcio>=1.85.1' 'grpcio-health-checking>=1.85.1' 'protobuf>=7.36.2'"
    assert install in message


def test_the_runtime_checks_the_dependencies_the_package_declares():
    declared = tomllib.loads((SDK_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(requirement for _, requirement in RUNTIME_REQUIREMENTS) == sorted(declared)


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


def test_file_runner_names_a_module_the_file_imports_and_this_interpreter_lacks(tmp_path, runners):
    model_file = tmp_path / "model.py"
    model_file.write_text("import clipper_test_no_such_module\n\ndef predict(xs):\n    return xs\n")
    runner = runners(["-m", "clipper_runtime.file_runner", str(model_file), "predict"], CLIPPER_MODEL_PORT="0")
    assert runner.process.wait(timeout=30) == EXIT_ENVIRONMENT
    last = runner.stderr().strip().splitlines()[-1]
    assert last.startswith(
        f"file_runner: cannot load {model_file}: it needs the module 'clipper_test_no_such_module', "
        f"which the interpreter {sys.executable} (Python 3."
    )


def test_file_runner_in_an_interpreter_without_the_runtime_dependencies_says_what_to_install(tmp_path, bare_python):
    model_file = tmp_path / "model.py"
    model_file.write_text("def predict(xs):\n    return xs\n")
    completed = subprocess.run(
        [str(bare_python), "-m", "clipper_runtime.file_runner", str(model_file), "predict"],
        env=subprocess_env(CLIPPER_MODEL_PORT="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == EXIT_ENVIRONMENT
    assert completed.stderr.startswith(f"file_runner: the interpreter {bare_python} (Python 3.")
    assert "lacks the Clipper model runtime's dependencies (grpc: No module named 'grpc'" in completed.stderr
