"""Ray Serve serving the benchmark's no-op and scikit-learn models over its
HTTP proxy on 127.0.0.1, with the same predict functions Clipper serves.

    bench/.venv/bin/python bench/baselines/ray_serve.py --port 8000

POST /noop and /sklearn with {"input": [...]} as for Clipper's REST API.
Prints one JSON line {"msg": "listening", "port": N} when both answer, then
serves until SIGTERM. Defaults of Ray Serve are kept (one replica per model,
its default max_ongoing_requests), as a user would first meet it, unless
--max-ongoing-requests N raises the requests a replica takes at once (the first
knob Ray's docs suggest for throughput).
"""

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import ray
from ray import serve
from starlette.requests import Request

MODELS_DIR = str(Path(__file__).resolve().parent.parent / "models")
sys.path.insert(0, MODELS_DIR)
import noop  # noqa: E402
import sklearn_digits  # noqa: E402


@serve.deployment
class Noop:
    async def __call__(self, request: Request):
        body = await request.json()
        return {"output": noop.predict([body["input"]])[0], "default": False}


@serve.deployment
class Sklearn:
    async def __call__(self, request: Request):
        body = await request.json()
        return {"output": sklearn_digits.predict([np.asarray(body["input"], dtype=np.float64)])[0], "default": False}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-ongoing-requests", type=int, default=0, help="0: Ray Serve's default")
    args = parser.parse_args()
    tuned = {"max_ongoing_requests": args.max_ongoing_requests} if args.max_ongoing_requests > 0 else {}
    # Replicas are separate worker processes: they import the models from PYTHONPATH.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": MODELS_DIR}},
    )
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Noop.options(**tuned).bind(), name="noop", route_prefix="/noop")
    serve.run(Sklearn.options(**tuned).bind(), name="sklearn", route_prefix="/sklearn")
    print(json.dumps({"msg": "listening", "port": args.port}), flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
