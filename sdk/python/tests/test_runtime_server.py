"""ModelServer in-process, called over real gRPC with the generated stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc
from clipper_runtime import ModelServer, pack_inputs


@pytest.fixture
def serve_model(channel_to):
    servers: list[ModelServer] = []

    def start(model, input_type="doubles", **kwargs):
        server = ModelServer(model, name="m", version="3", input_type=input_type, port=0, **kwargs)
        servers.append(server)
        port = server.start()
        return model_service_pb2_grpc.ModelServiceStub(channel_to(port)), port

    yield start
    for server in servers:
        server.stop(grace=1)


def predict(stub, inputs: data_pb2.Inputs) -> list[data_pb2.Output]:
    return list(stub.Predict(model_service_pb2.PredictRequest(inputs=inputs, batch_id=7), timeout=10).outputs)


def values(outputs):
    assert all(o.HasField("value") for o in outputs), outputs
    return [o.value for o in outputs]


@pytest.mark.parametrize(
    "input_type,dtype,batch",
    [
        ("doubles", np.float64, [[1.5, 2.25, 3.0], [], [-4.0]]),
        ("floats", np.float32, [[0.5, 1.5], [2.0]]),
        ("ints", np.int32, [[1, -2, 3], [2147483647, -2147483648]]),
    ],
)
def test_numeric_inputs_arrive_as_numpy_arrays(serve_model, input_type, dtype, batch):
    seen = []

    def model(xs):
        seen.extend(xs)
        return [f"{x.dtype}:{x.tolist()}" for x in xs]

    stub, _ = serve_model(model, input_type)
    outputs = values(predict(stub, pack_inputs(batch, data_pb2.InputType.Value(f"INPUT_TYPE_{input_type.upper()}"))))
    assert all(isinstance(x, np.ndarray) and x.dtype == dtype for x in seen)
    assert outputs == [f"{np.dtype(dtype)}:{np.asarray(x, dtype=dtype).tolist()}" for x in batch]


def test_string_inputs_arrive_as_str(serve_model):
    stub, _ = serve_model(lambda xs: [f"{type(x).__name__}:{x.upper()}" for x in xs], "strings")
    inputs = data_pb2.Inputs(type=data_pb2.INPUT_TYPE_STRINGS, strings=["héllo", "", "b"])
    assert values(predict(stub, inputs)) == ["str:HÉLLO", "str:", "str:B"]


def test_byte_inputs_arrive_as_bytes(serve_model):
    stub, _ = serve_model(lambda xs: [f"{type(x).__name__}:{x.hex()}" for x in xs], "bytes")
    inputs = data_pb2.Inputs(type=data_pb2.INPUT_TYPE_BYTES, bytes=[b"\x00\xff", b"ab"])
    assert values(predict(stub, inputs)) == ["bytes:00ff", "bytes:6162"]


def test_object_with_predict_method(serve_model):
    class Summer:
        def predict(self, xs):
            return [str(float(x.sum())) for x in xs]

    stub, _ = serve_model(Summer())
    assert values(predict(stub, pack_inputs([[1.0, 2.0], [3.0]], data_pb2.INPUT_TYPE_DOUBLES))) == ["3.0", "3.0"]


def test_wrong_output_length_is_a_per_input_error(serve_model):
    stub, _ = serve_model(lambda xs: ["only one"])
    outputs = predict(stub, pack_inputs([[1.0], [2.0], [3.0]], data_pb2.INPUT_TYPE_DOUBLES))
    assert len(outputs) == 3
    assert [o.error for o in outputs] == ["model returned 1 outputs for 3 inputs"] * 3


def test_exception_becomes_errors_and_server_keeps_serving(serve_model):
    calls = []

    def model(xs):
        calls.append(len(xs))
        if len(calls) == 1:
            raise ValueError("bad feature")
        return ["ok"] * len(xs)

    stub, _ = serve_model(model)
    outputs = predict(stub, pack_inputs([[1.0], [2.0]], data_pb2.INPUT_TYPE_DOUBLES))
    assert [o.error for o in outputs] == ["model raised ValueError: bad feature"] * 2
    assert values(predict(stub, pack_inputs([[1.0]], data_pb2.INPUT_TYPE_DOUBLES))) == ["ok"]


def test_non_string_outputs_are_errors_for_those_inputs(serve_model):
    stub, _ = serve_model(lambda xs: ["fine", 2.5, None])
    outputs = predict(stub, pack_inputs([[1.0], [2.0], [3.0]], data_pb2.INPUT_TYPE_DOUBLES))
    assert outputs[0].value == "fine"
    assert outputs[1].error == "output 1 is float, expected str"
    assert outputs[2].error == "output 2 is NoneType, expected str"


def test_non_list_result_is_an_error(serve_model):
    stub, _ = serve_model(lambda xs: "not a list")
    outputs = predict(stub, pack_inputs([[1.0]], data_pb2.INPUT_TYPE_DOUBLES))
    assert outputs[0].error == "model returned str, expected a list of 1 strings"


def test_numpy_string_array_result_is_accepted(serve_model):
    stub, _ = serve_model(lambda xs: np.array([str(len(x)) for x in xs]))
    assert values(predict(stub, pack_inputs([[1.0, 2.0], [3.0]], data_pb2.INPUT_TYPE_DOUBLES))) == ["2", "1"]


def test_wrong_input_type_is_invalid_argument(serve_model):
    stub, _ = serve_model(lambda xs: ["x"] * len(xs))
    with pytest.raises(grpc.RpcError) as caught:
        predict(stub, data_pb2.Inputs(type=data_pb2.INPUT_TYPE_STRINGS, strings=["a"]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "inputs.type is strings, this model takes doubles"


def test_lengths_not_matching_values_is_invalid_argument(serve_model):
    stub, _ = serve_model(lambda xs: ["x"] * len(xs))
    with pytest.raises(grpc.RpcError) as caught:
        predict(stub, data_pb2.Inputs(type=data_pb2.INPUT_TYPE_DOUBLES, lengths=[2, 2], doubles=[1.0, 2.0, 3.0]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.lengths sum to 4 but inputs.doubles has 3 values" == caught.value.details()


def test_empty_batch_answers_no_outputs_without_calling_the_model(serve_model):
    calls = []
    stub, _ = serve_model(lambda xs: calls.append(xs) or [])
    assert predict(stub, data_pb2.Inputs(type=data_pb2.INPUT_TYPE_DOUBLES)) == []
    assert calls == []


def test_health_metadata_and_readiness(serve_model, channel_to):
    stub, port = serve_model(lambda xs: ["x"] * len(xs), "ints")
    health = health_pb2_grpc.HealthStub(channel_to(port))
    for service in ("", "clipper.model.v1.ModelService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    metadata = stub.GetMetadata(model_service_pb2.GetMetadataRequest(), timeout=5)
    assert (metadata.model_name, metadata.model_version, metadata.input_type) == ("m", "3", data_pb2.INPUT_TYPE_INTS)
    assert metadata.runtime.startswith("python 3.")
    assert stub.CheckReadiness(model_service_pb2.CheckReadinessRequest(), timeout=5).ready


def test_invalid_model_and_input_type_are_rejected_at_construction():
    with pytest.raises(TypeError, match="must be a function"):
        ModelServer(42)
    with pytest.raises(ValueError, match="invalid input type 'matrix'"):
        ModelServer(lambda xs: xs, input_type="matrix")


def test_bind_failure_is_an_os_error():
    with ModelServer(lambda xs: xs) as first:
        with pytest.raises(OSError):
            ModelServer(lambda xs: xs, port=first.port).start()


def stream_requests(*batches):
    for batch_id, inputs in batches:
        yield model_service_pb2.PredictStreamRequest(batch_id=batch_id, inputs=inputs)


def test_predict_stream_answers_each_batch_by_id_and_goes_on_after_a_bad_one(serve_model):
    stub, _ = serve_model(lambda xs: [str(float(x.sum())) for x in xs])
    doubles = lambda batch: pack_inputs(batch, data_pb2.INPUT_TYPE_DOUBLES)  # noqa: E731
    wrong_type = data_pb2.Inputs(type=data_pb2.INPUT_TYPE_STRINGS, strings=["a"])
    answers = list(
        stub.PredictStream(
            stream_requests((11, doubles([[1.0, 2.0]])), (12, wrong_type), (13, doubles([[3.0], [4.0, 5.0]]))),
            timeout=10,
        )
    )
    assert [a.batch_id for a in answers] == [11, 12, 13]
    assert values(answers[0].outputs) == ["3.0"]
    assert answers[1].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "strings" in answers[1].error_message and not answers[1].outputs
    assert values(answers[2].outputs) == ["3.0", "9.0"]
    assert answers[0].error_code == 0 and answers[2].error_code == 0


def test_predict_stream_runs_batches_at_once_with_concurrency(serve_model):
    import threading

    both_running = threading.Barrier(2, timeout=5)

    def model(xs):
        # Each batch waits for the other: only answers if the two run at the same time.
        both_running.wait()
        return [str(x[0]) for x in xs]

    stub, _ = serve_model(model, concurrency=2)
    answers = list(
        stub.PredictStream(
            stream_requests(
                (1, pack_inputs([[1.0]], data_pb2.INPUT_TYPE_DOUBLES)),
                (2, pack_inputs([[2.0]], data_pb2.INPUT_TYPE_DOUBLES)),
            ),
            timeout=10,
        )
    )
    assert sorted((a.batch_id, list(a.outputs)[0].value) for a in answers) == [(1, "1.0"), (2, "2.0")]


def test_predict_stream_answers_every_batch_before_it_ends(serve_model):
    """The stream ends once all is answered, never ahead of an answer still being
    queued. A tiny thread switch interval makes the old window (a future is done
    before its done-callback queues the answer) show within a few streams."""
    import sys

    stub, _ = serve_model(lambda xs: [str(x[0]) for x in xs], concurrency=2)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(200):
            batches = [(i, pack_inputs([[float(i)]], data_pb2.INPUT_TYPE_DOUBLES)) for i in range(1, 5)]
            answers = list(stub.PredictStream(stream_requests(*batches), timeout=30))
            assert sorted(a.batch_id for a in answers) == [1, 2, 3, 4]
    finally:
        sys.setswitchinterval(interval)


def test_predict_stream_refuses_a_batch_past_the_open_bound_and_answers_the_rest(serve_model):
    import threading

    from clipper_runtime.model_service import MAX_OPEN_BATCHES

    gate = threading.Event()

    def model(xs):
        gate.wait(10)
        return ["ok" for _ in xs]

    stub, _ = serve_model(model, concurrency=2)
    batches = [(i, pack_inputs([[float(i)]], data_pb2.INPUT_TYPE_DOUBLES)) for i in range(1, MAX_OPEN_BATCHES + 2)]
    codes = {}
    for answer in stub.PredictStream(stream_requests(*batches), timeout=30):
        codes[answer.batch_id] = answer.error_code
        if answer.batch_id == MAX_OPEN_BATCHES + 1:
            gate.set()
    assert len(codes) == MAX_OPEN_BATCHES + 1
    assert codes[MAX_OPEN_BATCHES + 1] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert sum(1 for c in codes.values() if c == 0) == MAX_OPEN_BATCHES


@pytest.mark.parametrize("concurrency", [1, 2])
def test_stop_ends_an_idle_stream_at_once_and_a_busy_one_after_its_answer(channel_to, concurrency):
    """A router keeps its PredictStream open: stop must not wait its whole grace for it, nor cut a batch."""
    import threading
    import time

    started = threading.Event()

    def model(xs):
        if xs[0][0] == 2.0:
            started.set()
            time.sleep(1.0)
        return [str(x[0]) for x in xs]

    server = ModelServer(model, name="m", version="1", input_type="doubles", port=0, concurrency=concurrency)
    port = server.start()
    stub = model_service_pb2_grpc.ModelServiceStub(channel_to(port))
    release_idle = threading.Event()
    release_busy = threading.Event()

    def requests(first: float, release: threading.Event):
        yield model_service_pb2.PredictStreamRequest(
            batch_id=1, inputs=pack_inputs([[first]], data_pb2.INPUT_TYPE_DOUBLES)
        )
        release.wait(30)  # the client sends nothing more: the stream stays open, as a router's does

    idle_answers = stub.PredictStream(requests(1.0, release_idle), timeout=30)
    assert next(idle_answers).outputs[0].value == "1.0"
    busy_answers = stub.PredictStream(requests(2.0, release_busy), timeout=30)
    assert started.wait(10)
    began = time.monotonic()
    stopping = threading.Thread(target=server.stop, kwargs={"grace": 5.0})
    stopping.start()
    # The busy stream's batch is answered, then the stream ends.
    answer = next(busy_answers)
    assert answer.error_code == 0 and answer.outputs[0].value == "2.0"
    stopping.join(10)
    took = time.monotonic() - began
    release_idle.set()
    release_busy.set()
    assert not stopping.is_alive()
    assert took < 3.0, f"stop took {took:.1f} s with grace 5 s: it waited for streams with nothing in flight"
    for stream in (idle_answers, busy_answers):
        try:
            assert list(stream) == []
        except grpc.RpcError as error:  # an idle stream is cancelled: it had nothing in flight to lose
            assert error.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
