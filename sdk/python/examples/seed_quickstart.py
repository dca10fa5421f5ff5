"""Clipper's Python quickstart (the seed README's), with LocalContainerManager
in place of Docker, and a closure that captures a trained scikit-learn model.

Run it with the Python of your own environment (a venv, conda env or notebook
kernel) where the SDK and scikit-learn are installed:

    python -m venv ~/my-env && ~/my-env/bin/pip install clipper_sdk-*.whl scikit-learn
    CLIPPER_REPO=/path/to/clipper-checkout ~/my-env/bin/python seed_quickstart.py

The models run in that same environment (the interpreter that deploys them).
It prints one line per check and exits 1 when one fails. Run it again: the
registry keeps what the first run registered across stop_all() and
start_clipper(), and registering and deploying the same things again succeeds.
`--fresh` removes that state at the end (stop_all(remove_data=True)).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import urllib.error
import urllib.request

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer

ANSWER_WAIT_SECONDS = 30.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="Clipper's data directory (default: clipper up's, ~/.clipper/data)")
    parser.add_argument(
        "--ports",
        help="gateway,registry,router,container-manager ports (default 1337,1338,1339,1340)",
        type=lambda raw: [int(p) for p in raw.split(",")],
    )
    parser.add_argument("--fresh", action="store_true", help="remove Clipper's state when done")
    return parser.parse_args()


def predict(addr: str, app: str, value) -> dict:
    request = urllib.request.Request(
        f"http://{addr}/{app}/predict",
        data=json.dumps({"input": value}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def first_answer(addr: str, app: str, value) -> dict:
    """The gateway and router learn of a new link by watching the registry: retry until a model answers."""
    deadline = time.monotonic() + ANSWER_WAIT_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predict(addr, app, value)
            if last.get("default") is False:
                return last
        except urllib.error.URLError as error:
            last = error
        time.sleep(0.25)
    raise AssertionError(f"{app} gave no model answer within {ANSWER_WAIT_SECONDS:g} s; last: {last!r}")


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, what: str, step):
        try:
            result = step()
        except Exception as error:
            self.failed += 1
            print(f"FAIL {what}: {type(error).__name__}: {error}", flush=True)
            traceback.print_exc(file=sys.stderr)
            return None
        self.passed += 1
        print(f"ok   {what}", flush=True)
        return result


def main() -> int:
    args = parse_args()
    options = {"data_dir": args.data_dir}
    if args.ports:
        gateway, registry, router, container_manager = args.ports
        options.update(
            gateway_port=gateway, registry_port=registry, router_port=router, container_manager_port=container_manager
        )
    clipper_conn = ClipperConnection(LocalContainerManager(**options))
    checks = Checks()
    if checks.run("start_clipper()", clipper_conn.start_clipper) is None and not clipper_conn.connected:
        print(f"{checks.passed} of {checks.passed + checks.failed} checks passed")
        return 1
    addr = clipper_conn.get_query_addr()
    try:
        # The seed: an application "hello-world", and a model that sums each feature vector.
        checks.run(
            "register_application hello-world",
            lambda: clipper_conn.register_application(
                name="hello-world", input_type="doubles", default_output="-1.0", slo_micros=100000
            ),
        )

        def apps_listed():
            assert "hello-world" in clipper_conn.get_all_apps(), clipper_conn.get_all_apps()

        checks.run("get_all_apps() lists hello-world", apps_listed)

        def feature_sum(xs):
            return [str(np.sum(x)) for x in xs]

        checks.run(
            "deploy_python_closure sum-model:1",
            lambda: python_deployer.deploy_python_closure(
                clipper_conn, name="sum-model", version=1, input_type="doubles", func=feature_sum
            ),
        )
        checks.run(
            "link sum-model to hello-world",
            lambda: clipper_conn.link_model_to_app(app_name="hello-world", model_name="sum-model"),
        )

        def sums_answered():
            answer = first_answer(addr, "hello-world", [1.1, 2.2, 3.3])
            assert float(answer["output"]) == float(np.sum([1.1, 2.2, 3.3])), answer
            values = list(np.random.default_rng(0).random(10))
            answer = predict(addr, "hello-world", values)
            assert answer["default"] is False and float(answer["output"]) == float(np.sum(values)), answer

        checks.run("hello-world answers the sums over REST", sums_answered)

        # A closure that captures a trained scikit-learn model: it runs where scikit-learn is, this environment.
        features, labels = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=1000).fit(features, labels)

        def iris_predict(xs):
            return [str(label) for label in model.predict(np.stack(xs))]

        checks.run(
            "register_application iris",
            lambda: clipper_conn.register_application(
                name="iris", input_type="doubles", default_output="-1", slo_micros=1000000
            ),
        )
        checks.run(
            "deploy_python_closure iris-model:1 (a trained LogisticRegression)",
            lambda: python_deployer.deploy_python_closure(
                clipper_conn, name="iris-model", version=1, input_type="doubles", func=iris_predict
            ),
        )
        checks.run("link iris-model to iris", lambda: clipper_conn.link_model_to_app("iris", "iris-model"))

        def iris_answered():
            expected = model.predict(features)
            first_answer(addr, "iris", features[0].tolist())
            for index in range(len(features)):
                answer = predict(addr, "iris", features[index].tolist())
                assert answer["default"] is False, answer
                assert str(answer["output"]) == str(expected[index]), (index, answer, expected[index])

        checks.run("iris answers the local model's prediction for all 150 inputs", iris_answered)
    finally:
        checks.run(
            "stop_all()" + (" removing the state" if args.fresh else ""),
            lambda: clipper_conn.stop_all(remove_data=args.fresh),
        )
    print(f"{checks.passed} of {checks.passed + checks.failed} checks passed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
