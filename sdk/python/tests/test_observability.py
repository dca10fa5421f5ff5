"""The runtime's own Prometheus metrics: requests, batch sizes, predict time."""

import urllib.request

import grpc

from clipper.common.v1 import data_pb2
from clipper.model.v1 import model_service_pb2, model_service_pb2_grpc
from clipper_runtime import ModelServer
from clipper_runtime.observability import tracing_requested


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_batches_inputs_and_errors():
    def predict(inputs):
        if len(inputs) == 3:
            raise ValueError("no batches of three")
        return [str(sum(x)) for x in inputs]

    with ModelServer(predict, name="m", version="2", metrics_port=0) as server:
        assert server.metrics_port
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            for lengths in ([1, 1], [1], [1, 1, 1]):
                inputs = data_pb2.Inputs(
                    type=data_pb2.INPUT_TYPE_DOUBLES, lengths=lengths, doubles=[1.0] * len(lengths)
                )
                stub.Predict(model_service_pb2.PredictRequest(inputs=inputs, batch_id=1))
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    labels = {"model": "m", "version": "2"}
    assert sample(text, "clipper_model_requests_total", outcome="ok", **labels) == 2
    assert sample(text, "clipper_model_requests_total", outcome="model_error", **labels) == 1
    assert sample(text, "clipper_model_inputs_total", outcome="ok", **labels) == 3
    assert sample(text, "clipper_model_inputs_total", outcome="error", **labels) == 3
    assert sample(text, "clipper_model_batch_size_count", **labels) == 3
    assert sample(text, "clipper_model_batch_size_sum", **labels) == 6
    assert sample(text, "clipper_model_predict_duration_seconds_count", **labels) == 3


def test_tracing_is_off_unless_an_exporter_is_named():
    assert tracing_requested({}) == []
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"}) == ["otlp"]
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []
