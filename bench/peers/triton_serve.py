"""Starts NVIDIA Triton through pytriton (it bundles tritonserver; CPU only here)
with the benchmark's three models, each with Triton's dynamic batcher, then
prints {"msg":"listening","port":HTTP} for bench/run.ts.

  python triton_serve.py --http-port P --grpc-port P --metrics-port P
"""

import argparse
import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

# tritonserver's Python backend stub links the interpreter's libpython: without
# the pyenv Python's lib directory on the path, model loading fails.
_LIBDIR = sysconfig.get_config_var("LIBDIR")
if _LIBDIR and _LIBDIR not in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (_LIBDIR, os.environ.get("LD_LIBRARY_PATH")) if p
    )

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

import fixed_cost
import noop
import sklearn_digits
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import (
    DEFAULT_PROTECTED_ENDPOINTS,
    Triton,
    TritonConfig,
    TritonSecurityConfig,
)

# Our fixed-batched application's batch bound.
MAX_BATCH_SIZE = 256


def rows_model(predict):
    """An infer function calling `predict` (the one Clipper's container calls) on the batch's rows."""

    @batch
    def infer(input):
        answers = np.asarray(predict(list(input)), dtype=np.float64)
        return {"output": answers.reshape(-1, 1)}

    return infer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
    )
    models = {
        "noop": noop.predict,
        "sklearn": sklearn_digits.predict,
        "fixed": fixed_cost.predict,
    }
    # pytriton restricts some of tritonserver's APIs to callers sending its random
    # triton-access-token; perf_analyzer reads the statistics API before and after
    # each measurement, so that one is left open (loopback only, for the benchmark).
    security = TritonSecurityConfig(
        restricted_endpoints=[
            e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"
        ]
    )
    with Triton(config=config, security_config=security) as triton:
        for name, predict in models.items():
            triton.bind(
                model_name=name,
                infer_func=rows_model(predict),
                inputs=[Tensor(name="input", dtype=np.float64, shape=(-1,))],
                outputs=[Tensor(name="output", dtype=np.float64, shape=(1,))],
                config=ModelConfig(
                    max_batch_size=MAX_BATCH_SIZE, batcher=DynamicBatcher()
                ),
                strict=True,
            )
        # bind() returns once Triton has loaded the model; serve() blocks until SIGTERM/SIGINT.
        print(json.dumps({"msg": "listening", "port": args.http_port}), flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
