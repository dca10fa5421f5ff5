"""Clipper's quickstart against the real system (`clipper up`), run by the
lead with CLIPPER_E2E=1; skipped otherwise."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")

from conftest import local_clipper  # noqa: E402

from clipper_admin.deployers import python as python_deployer  # noqa: E402

QUERY_DEADLINE_SECONDS = 30.0


def feature_sum(xs):
    return [str(sum(x)) for x in xs]


def query(addr: str, app: str, value) -> dict:
    request = urllib.request.Request(
        f"http://{addr}/{app}/predict",
        data=json.dumps({"input": value}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def query_until_answered(addr: str, app: str, value) -> dict:
    """Config reaches the gateway and router by watch, and a cold replica may
    miss the first SLO: retry until a model answers, within a bound."""
    deadline = time.monotonic() + QUERY_DEADLINE_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = query(addr, app, value)
            if last.get("default") is False:
                return last
        except urllib.error.URLError as error:
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{app} gave no model answer within {QUERY_DEADLINE_SECONDS} s; last: {last!r}")


@pytest.fixture
def conn(tmp_path):
    with local_clipper(tmp_path / "clipper-data") as connection:
        yield connection


def test_quickstart(conn):
    conn.register_application(name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=100000)
    python_deployer.deploy_python_closure(conn, name="sum-model", version=1, input_type="doubles", func=feature_sum)
    conn.link_model_to_app(app_name="hello-world", model_name="sum-model")
    assert conn.get_all_apps() == ["hello-world"]
    assert conn.get_linked_models("hello-world") == ["sum-model"]

    answer = query_until_answered(conn.get_query_addr(), "hello-world", [1.1, 2.2, 3.3])
    assert float(answer["output"]) == sum([1.1, 2.2, 3.3])

    # A plain grpcio client from the stubs generated from proto/ calls Predict on the same port.
    import grpc

    from clipper.v1 import prediction_service_pb2 as pb
    from clipper.v1 import prediction_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(conn.get_query_addr()) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        request = pb.PredictRequest(
            application="hello-world", input=pb.Input(doubles=pb.DoubleVector(values=[1.1, 2.2, 3.3]))
        )
        reply = stub.Predict(request, timeout=10)
        assert reply.prediction.default is False
        assert float(reply.prediction.output) == sum([1.1, 2.2, 3.3])
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Predict(pb.PredictRequest(application="no-such-app", input=request.input), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_scikit_learn_closure(conn):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)

    def predict(xs):
        return [str(label) for label in model.predict(np.stack(xs))]

    conn.register_application(name="iris", input_type="doubles", default_output="-1", slo_micros=1000000)
    python_deployer.deploy_python_closure(conn, name="iris-model", version=1, input_type="doubles", func=predict)
    conn.link_model_to_app(app_name="iris", model_name="iris-model")

    expected = model.predict(features)
    query_until_answered(conn.get_query_addr(), "iris", features[0].tolist())
    for index in range(0, len(features), 10):
        answer = query(conn.get_query_addr(), "iris", features[index].tolist())
        assert answer["default"] is False, answer
        assert str(answer["output"]) == str(expected[index])
