"""The Open Inference Protocol (KServe v2) at the gateway, driven by Triton's own
clients (tritonclient's HTTP and gRPC clients) against the real system
(`clipper up`, Python closures as models). Run with CLIPPER_E2E=1; skipped otherwise."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")

import grpc  # noqa: E402
import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402
from conftest import free_ports  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from clipper_admin import ClipperConnection, LocalContainerManager  # noqa: E402
from clipper_admin.deployers import python as python_deployer  # noqa: E402

READY_DEADLINE_SECONDS = 60.0


def feature_sum(xs):
    return [str(sum(x)) for x in xs]


def feature_sum_times_ten(xs):
    return [str(10 * sum(x)) for x in xs]


def shout(words):
    return [w.upper() for w in words]


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    gateway, registry, router, container_manager = free_ports(4)
    conn = ClipperConnection(
        LocalContainerManager(
            data_dir=tmp_path_factory.mktemp("oip") / "clipper-data",
            gateway_port=gateway,
            registry_port=registry,
            router_port=router,
            container_manager_port=container_manager,
        )
    )
    conn.start_clipper()
    try:
        conn.register_application(name="sum", input_type="doubles", default_output="-1.0", slo_micros=2_000_000)
        python_deployer.deploy_python_closure(conn, name="sum-model", version=1, input_type="doubles", func=feature_sum)
        conn.link_model_to_app(app_name="sum", model_name="sum-model")
        python_deployer.deploy_python_closure(
            conn, name="sum-model", version=2, input_type="doubles", func=feature_sum_times_ten
        )
        conn.register_application(name="words", input_type="strings", default_output="none", slo_micros=2_000_000)
        python_deployer.deploy_python_closure(conn, name="shout-model", version=1, input_type="strings", func=shout)
        conn.link_model_to_app(app_name="words", model_name="shout-model")
        address = conn.get_query_addr()
        wait_until_answered(address)
        yield address
    finally:
        conn.stop_all()


def wait_until_answered(address: str) -> None:
    """Config reaches the gateway by watch and a cold replica may miss the first
    SLO: ask until both models are ready and answer, within a bound."""
    client = httpclient.InferenceServerClient(address)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            if client.is_model_ready("sum") and client.is_model_ready("words"):
                sums = client.infer("sum", [doubles_input(np.ones((1, 2)))])
                words = client.infer("words", [bytes_input(np.array([b"a"], dtype=np.object_))])
                if not sums.as_numpy("default").any() and not words.as_numpy("default").any():
                    return
                last = "answered with the default"
        except InferenceServerException as error:
            last = error
        time.sleep(0.25)
    raise AssertionError(f"no model answer within {READY_DEADLINE_SECONDS} s; last: {last!r}")


def doubles_input(values: np.ndarray, module=httpclient, binary: bool = True):
    tensor = module.InferInput("input", list(values.shape), "FP64")
    if module is httpclient:
        tensor.set_data_from_numpy(values.astype(np.float64), binary_data=binary)
    else:
        tensor.set_data_from_numpy(values.astype(np.float64))
    return tensor


def bytes_input(values: np.ndarray, module=httpclient):
    tensor = module.InferInput("input", list(values.shape), "BYTES")
    tensor.set_data_from_numpy(values)
    return tensor


def test_health_and_metadata_over_http(system):
    client = httpclient.InferenceServerClient(system)
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "clipper"
    assert "binary_tensor_data" in server["extensions"]
    assert client.is_model_ready("sum")
    assert client.is_model_ready("sum", model_version="1")
    metadata = client.get_model_metadata("sum")
    assert metadata["name"] == "sum"
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, -1]}]
    assert metadata["outputs"][0] == {"name": "output", "datatype": "FP64", "shape": [-1]}
    assert client.get_model_metadata("words")["inputs"][0]["datatype"] == "BYTES"


def test_health_and_metadata_over_grpc(system):
    client = grpcclient.InferenceServerClient(system)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "clipper"
    assert client.is_model_ready("sum")
    metadata = client.get_model_metadata("sum")
    assert list(metadata.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("input", "FP64", [-1, -1])]
    assert [(t.name, t.datatype) for t in metadata.outputs] == [("output", "FP64"), ("default", "BOOL")]


def test_http_infer_binary_and_json_tensors_a_batch_and_versions(system):
    client = httpclient.InferenceServerClient(system)
    batch = np.arange(12, dtype=np.float64).reshape(3, 4)
    expected = batch.sum(axis=1)

    # tritonclient's default: binary input and binary outputs.
    binary = client.infer("sum", [doubles_input(batch)])
    assert np.allclose(binary.as_numpy("output"), expected * 10)  # the current version is 2
    assert binary.as_numpy("default").tolist() == [False, False, False]

    # JSON both ways.
    as_json = client.infer(
        "sum",
        [doubles_input(batch, binary=False)],
        outputs=[httpclient.InferRequestedOutput("output", binary_data=False)],
        model_version="1",
    )
    assert np.allclose(as_json.as_numpy("output"), expected)
    assert as_json.get_response()["model_version"] == "1"
    assert [o["name"] for o in as_json.get_response()["outputs"]] == ["output"]

    words = client.infer("words", [bytes_input(np.array([[b"hi"], [b"there"]], dtype=np.object_))])
    assert words.as_numpy("output").tolist() == [b"HI", b"THERE"]


def test_plain_json_over_http_as_curl_sends_it(system):
    body = {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]}
    request = urllib.request.Request(
        f"http://{system}/v2/models/sum/versions/1/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["model_name"] == "sum"
    assert answer["outputs"][0] == {"name": "output", "datatype": "FP64", "shape": [2], "data": [3, 7]}


def test_grpc_infer_raw_and_typed_contents(system):
    client = grpcclient.InferenceServerClient(system)
    batch = np.array([[1.5, 2.5], [3.0, 4.0]])
    result = client.infer("sum", [doubles_input(batch, grpcclient)], model_version="1", request_id="r-1")
    assert result.as_numpy("output").tolist() == [4.0, 7.0]
    assert result.get_response().id == "r-1"

    # Typed contents (fp64_contents), as a client other than tritonclient may send them.
    with grpc.insecure_channel(system) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="sum", model_version="1")
        tensor = request.inputs.add(name="input", datatype="FP64", shape=[1, 3])
        tensor.contents.fp64_contents.extend([1, 2, 3])
        reply = stub.ModelInfer(request, timeout=10)
        assert [o.name for o in reply.outputs] == ["output", "default"]
        assert np.frombuffer(reply.raw_output_contents[0], dtype="<f8").tolist() == [6.0]

    words = client.infer("words", [bytes_input(np.array([b"grpc"], dtype=np.object_), grpcclient)])
    assert words.as_numpy("output").tolist() == [b"GRPC"]


def test_grpc_stream_infer(system):
    client = grpcclient.InferenceServerClient(system)
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i in range(4):
            client.async_stream_infer(
                "sum", [doubles_input(np.array([[i, i]]), grpcclient)], model_version="1", request_id=str(i)
            )
        strings = bytes_input(np.array([b"x"], dtype=np.object_), grpcclient)
        client.async_stream_infer("sum", [strings], request_id="bad")
        got = [answers.get(timeout=30) for _ in range(5)]
    finally:
        client.stop_stream()
    sums = {r.get_response().id: r.as_numpy("output").tolist() for r, e in got if e is None}
    assert sums == {str(i): [2.0 * i] for i in range(4)}
    errors = [e for r, e in got if e is not None]
    assert len(errors) == 1 and "datatype BYTES" in errors[0].message()


def test_bad_datatype_is_refused_by_name(system):
    wrong = np.ones((1, 2), dtype=np.float32)
    http_input = httpclient.InferInput("input", [1, 2], "FP32")
    http_input.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException) as over_http:
        httpclient.InferenceServerClient(system).infer("sum", [http_input])
    assert over_http.value.status() == "400"
    assert 'has datatype FP32, but application "sum" takes doubles: send FP64' in over_http.value.message()

    grpc_input = grpcclient.InferInput("input", [1, 2], "FP32")
    grpc_input.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException) as over_grpc:
        grpcclient.InferenceServerClient(system).infer("sum", [grpc_input])
    assert over_grpc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "send FP64" in over_grpc.value.message()


def test_unknown_model_and_version_are_not_found(system):
    http = httpclient.InferenceServerClient(system)
    with pytest.raises(InferenceServerException) as unknown:
        http.infer("no-such-model", [doubles_input(np.ones((1, 1)))])
    assert unknown.value.status() == "404"
    assert 'model "no-such-model" not found' in unknown.value.message()
    assert not http.is_model_ready("no-such-model")
    with pytest.raises(InferenceServerException) as no_version:
        http.get_model_metadata("sum", model_version="9")
    assert no_version.value.status() == "404"
    assert 'has no version "9"' in no_version.value.message()

    with pytest.raises(InferenceServerException) as over_grpc:
        grpcclient.InferenceServerClient(system).get_model_metadata("no-such-model")
    assert over_grpc.value.status() == "StatusCode.NOT_FOUND"
    assert 'model "no-such-model" not found' in over_grpc.value.message()


def test_v2_errors_are_json_with_an_error_field(system):
    request = urllib.request.Request(
        f"http://{system}/v2/models/sum/infer", data=b'{"inputs": [', headers={}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "not valid JSON" in json.loads(refused.value.read())["error"]


# A Python with KServe's SDK (`pip install kserve`), in a venv of its own: kserve pins protobuf < 7, the SDK's has 7.
KSERVE_PYTHON = os.environ.get("CLIPPER_KSERVE_PYTHON", "")


@pytest.mark.skipif(KSERVE_PYTHON == "", reason="set CLIPPER_KSERVE_PYTHON to a Python with kserve installed to run")
def test_kserve_python_clients_over_rest_and_grpc(system):
    """KServe's own clients, as a KServe user's code calls a predictor (kserve_client_check.py): InferenceRESTClient
    (v2 protocol) and InferenceGRPCClient, health, readiness, infer, and an unknown model refused."""
    check = os.path.join(os.path.dirname(__file__), "kserve_client_check.py")
    run = subprocess.run([KSERVE_PYTHON, check, system], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got == {
        "rest_live": True,
        "rest_ready": True,
        "rest_model_ready": True,
        # The current version is 2 (ten times the sum).
        "rest_infer": {"model": "sum", "outputs": {"output": [30.0, 70.0], "default": [False, False]}},
        "rest_unknown": 404,
        "grpc_live": True,
        "grpc_ready": True,
        "grpc_model_ready": True,
        "grpc_infer": {"model": "sum", "version": "1", "outputs": {"output": [4.0], "default": [False]}},
    }


PERF_ANALYZER = os.environ.get("CLIPPER_PERF_ANALYZER", "")
# Where its libcudart.so.12 is (PyPI's nvidia-cuda-runtime-cu12), for its LD_LIBRARY_PATH alone.
PERF_ANALYZER_LIBS = os.environ.get("CLIPPER_PERF_ANALYZER_LIBS", "")


@pytest.mark.skipif(PERF_ANALYZER == "", reason="set CLIPPER_PERF_ANALYZER to a perf_analyzer binary to run")
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_runs_against_the_endpoint(system, protocol):
    """perf_analyzer (tritonclient 2.41.1's binary) reads ModelMetadata and ModelConfig and
    drives ModelInfer: a short functional run, not a benchmark (stability is not asked)."""
    command = [PERF_ANALYZER, "-m", "sum", "-u", system, "-i", protocol, "--shape", "input:1,4"]
    # perf_analyzer fails a run whose windows differ more than -s percent (it failed at 100% on a CI machine at
    # load 9): a functional run accepts any spread, over up to ten windows.
    command += ["--concurrency-range", "1:1", "--measurement-interval", "500", "--max-trials", "10", "-s", "10000"]
    libs = os.pathsep.join(p for p in [PERF_ANALYZER_LIBS, os.environ.get("LD_LIBRARY_PATH", "")] if p)
    env = dict(os.environ, LD_LIBRARY_PATH=libs)
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Request count:" in run.stdout
