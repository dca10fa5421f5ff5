"""Selection policies on real models: two scikit-learn classifiers of different
quality on the digits dataset, served by Clipper, with feedback from the true
labels. Writes cumulative accuracy per policy to policies.png and policies.csv.

Run it with examples/policies/run.sh (it starts and stops Clipper itself).
"""

from __future__ import annotations

import csv
import json
import random
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer

HERE = Path(__file__).resolve().parent
QUERIES = 400
SEED = 7
# Each application links both models and uses one policy; "single" links only the
# bad model first, the way an application looks before anyone compares models.
POLICIES = {
    "single-bad": ("single", {}),
    "split-50-50": ("split", {"weights": {"good": 0.5, "bad": 0.5}}),
    "exp3": ("exp3", {"gamma": 0.1}),
    "epsilon-greedy": ("epsilon_greedy", {"epsilon": 0.1}),
    "thompson": ("thompson", {}),
    "exp4": ("exp4", {"eta": 0.5}),
}


def free_ports(count: int) -> list[int]:
    """Ports p with p + 8000 free too (the services' metrics ports)."""
    def bindable(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    chosen = [p for p in random.Random().sample(range(20000, 30000), 500) if bindable(p) and bindable(p + 8000)]
    return chosen[:count]


def post(addr: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://{addr}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def classifier(model):
    # A closure over the fitted model: pickled and served by the Python SDK's runner.
    def predict(inputs):
        return [str(int(label)) for label in model.predict(np.asarray(inputs, dtype=float))]

    return predict


def main() -> int:
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.5, random_state=SEED)
    good = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    bad = DecisionTreeClassifier(max_depth=3, random_state=SEED).fit(x_train, y_train)
    print(f"offline accuracy: good {good.score(x_test, y_test):.3f}, bad {bad.score(x_test, y_test):.3f}", flush=True)

    order = random.Random(SEED).sample(range(len(x_test)), QUERIES)
    gateway, registry, router, manager = free_ports(4)
    data_dir = tempfile.mkdtemp(prefix="clipper-policies-")
    conn = ClipperConnection(
        LocalContainerManager(data_dir=data_dir, gateway_port=gateway, registry_port=registry, router_port=router, container_manager_port=manager)
    )
    conn.start_clipper()
    try:
        python_deployer.deploy_python_closure(conn, name="good", version=1, input_type="doubles", func=classifier(good))
        python_deployer.deploy_python_closure(conn, name="bad", version=1, input_type="doubles", func=classifier(bad))
        addr = conn.get_query_addr()
        curves: dict[str, list[float]] = {}
        for app, (kind, options) in POLICIES.items():
            conn.register_application(name=app, input_type="doubles", default_output="-1", slo_micros=2_000_000)
            for model in ("bad", "good"):
                conn.link_model_to_app(app, model)
            conn.set_selection_policy(app, kind, **options)
            wait_until_answered(addr, app, x_test[0].tolist())
            correct = 0
            curve = []
            for n, i in enumerate(order, start=1):
                x, label = x_test[i].tolist(), str(int(y_test[i]))
                answer = post(addr, f"/{app}/predict", {"input": x})
                correct += int(not answer["default"] and str(answer["output"]) == label)
                curve.append(correct / n)
                post(addr, f"/{app}/update", {"input": x, "label": label})
            curves[app] = curve
            print(f"{app:15s} accuracy {curve[-1]:.3f}; learned state: {summary(conn.get_policy_state(app))}", flush=True)
    finally:
        conn.stop_all()

    with open(HERE / "policies.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", *curves])
        for n in range(QUERIES):
            writer.writerow([n + 1, *(f"{curves[app][n]:.4f}" for app in curves)])
    plot(curves, good.score(x_test, y_test), bad.score(x_test, y_test))
    return 0


def wait_until_answered(addr: str, app: str, x: list[float]) -> None:
    """The routers learn of a new application by the registry's watch: wait for a model answer."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not post(addr, f"/{app}/predict", {"input": x})["default"]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{app} gave no model answer within 30 s")


def summary(state: dict | None) -> str:
    if state is None:
        return "none (the policy does not learn)"
    return json.dumps(state["state"], sort_keys=True)[:120]


def plot(curves: dict[str, list[float]], good_accuracy: float, bad_accuracy: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for app, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=app)
    ax.axhline(good_accuracy, color="grey", linestyle="--", linewidth=0.8, label=f"good model alone ({good_accuracy:.2f})")
    ax.axhline(bad_accuracy, color="grey", linestyle=":", linewidth=0.8, label=f"bad model alone ({bad_accuracy:.2f})")
    ax.set_xlabel("queries (each followed by its true label as feedback)")
    ax.set_ylabel("cumulative accuracy")
    ax.set_title("Clipper selection policies: logistic regression vs. depth-3 tree on digits")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "policies.png")
    print(f"wrote {HERE / 'policies.png'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
