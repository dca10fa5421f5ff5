"""Starts Seldon MLServer with the benchmark's three models (no-op, scikit-learn
digits through mlserver-sklearn, fixed cost) on the given ports, waits until
all are ready, then prints {"msg":"listening","port":HTTP} for bench/run.ts.

  python mlserver_serve.py --repo DIR --http-port P --grpc-port P --metrics-port P
                           [--workers N] [--adaptive-batching]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import joblib

HERE = Path(__file__).resolve().parent
MODELS_DIR = HERE.parent / "models"
MODELS = ("noop", "sklearn", "fixed")
# Our fixed-batched application's batch bound; the wait is half the model's 2 ms per-batch cost.
MAX_BATCH_SIZE = 256
MAX_BATCH_TIME_S = 0.001


def write_repository(repo: Path, args: argparse.Namespace) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "metrics_port": args.metrics_port,
    }
    if args.workers is not None:
        settings["parallel_workers"] = args.workers
    (repo / "settings.json").write_text(json.dumps(settings))
    batching = (
        {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME_S}
        if args.adaptive_batching
        else {}
    )
    models = {
        "noop": {"implementation": "mlserver_models.NoopModel"},
        "sklearn": {
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        },
        "fixed": {"implementation": "mlserver_models.FixedCostModel"},
    }
    for name, spec in models.items():
        folder = repo / name
        folder.mkdir(exist_ok=True)
        (folder / "model-settings.json").write_text(
            json.dumps({"name": name, **spec, **batching})
        )
    # The same LogisticRegression Clipper's container trains at import (deterministic solver).
    sys.path.insert(0, str(MODELS_DIR))
    import sklearn_digits

    joblib.dump(sklearn_digits._model, repo / "sklearn" / "model.joblib")


def wait_ready(port: int, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(MODELS)
    while pending:
        if server.poll() is not None:
            sys.exit(f"mlserver exited with {server.returncode}")
        if time.monotonic() > deadline:
            sys.exit(f"mlserver: models {sorted(pending)} not ready in {timeout_s} s")
        for name in sorted(pending):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v2/models/{name}/ready", timeout=2
                ) as res:
                    if res.status == 200:
                        pending.discard(name)
            except OSError:
                pass
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument(
        "--workers", type=int, help="parallel_workers (MLServer's default when absent)"
    )
    parser.add_argument("--adaptive-batching", action="store_true")
    args = parser.parse_args()
    write_repository(args.repo, args)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(MODELS_DIR), os.environ.get("PYTHONPATH", "")]
        ),
    }
    mlserver = Path(sys.executable).parent / "mlserver"
    # MLServer's own log goes to stderr, so that stdout carries only the line bench/run.ts waits for.
    server = subprocess.Popen(
        [str(mlserver), "start", str(args.repo)], env=env, stdout=sys.stderr
    )
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    wait_ready(args.http_port, server, 120)
    print(json.dumps({"msg": "listening", "port": args.http_port}), flush=True)
    sys.exit(server.wait())


if __name__ == "__main__":
    main()
