"""A Python client of the gateway's clipper.v1.PredictionService for bench/grpc-edge.ts: grpcio's asyncio API,
worker processes (one per core by default: the GIL makes one process the bottleneck), each with its own channel
and its share of the concurrent callers, closed loop for a fixed time. Prints one JSON line: requests, errors,
rps, p50_ms, p99_ms, cpu_s (the workers' CPU
time while timed).

    .venv/bin/python bench/grpc_edge_client.py --target 127.0.0.1:1337 --application APP --concurrency 64 --duration 10
    .venv/bin/python bench/grpc_edge_client.py --target 127.0.0.1:1337 --application APP --check
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python", "src"
    ),
)

import grpc
from clipper.v1 import prediction_service_pb2 as pb
from clipper.v1 import prediction_service_pb2_grpc as pb_grpc
from google.protobuf import json_format

INPUT = [1.1, 2.2, 3.3]
# A call that takes longer than this is counted as an error (the gateway's SLO answers far sooner).
CALL_TIMEOUT_S = 10.0


def request(application: str) -> pb.PredictRequest:
    return pb.PredictRequest(
        application=application, input=pb.Input(doubles=pb.DoubleVector(values=INPUT))
    )


async def worker_loop(
    target: str, application: str, callers: int, start_at: float, end_at: float
) -> dict:
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        req = request(application)
        await stub.Predict(
            req, timeout=CALL_TIMEOUT_S
        )  # connected before the clock starts
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def caller() -> None:
            nonlocal errors
            while time.time() < end_at:
                sent = time.perf_counter()
                try:
                    await stub.Predict(req, timeout=CALL_TIMEOUT_S)
                    latencies.append(time.perf_counter() - sent)
                except grpc.aio.AioRpcError:
                    errors += 1

        cpu_at_start = time.process_time()
        await asyncio.gather(*(caller() for _ in range(callers)))
        cpu_s = time.process_time() - cpu_at_start
    return {"latencies": latencies, "errors": errors, "cpu_s": cpu_s}


def worker(args: tuple) -> dict:
    return asyncio.run(worker_loop(*args))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True)
    parser.add_argument("--application", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--check", action="store_true", help="one call; print its prediction as JSON"
    )
    args = parser.parse_args()
    if args.check:
        with grpc.insecure_channel(args.target) as channel:
            res = pb_grpc.PredictionServiceStub(channel).Predict(
                request(args.application), timeout=CALL_TIMEOUT_S
            )
        print(json.dumps(json_format.MessageToDict(res.prediction)))
        return
    if not (1 <= args.workers <= args.concurrency <= 4096 and 0 < args.duration <= 600):
        parser.error("need 1 <= workers <= concurrency <= 4096 and 0 < duration <= 600")
    # Every worker starts its clock at the same moment, after all have connected.
    start_at = time.time() + 2.0
    end_at = start_at + args.duration
    shares = [
        args.concurrency // args.workers
        + (1 if i < args.concurrency % args.workers else 0)
        for i in range(args.workers)
    ]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(
            worker,
            [(args.target, args.application, n, start_at, end_at) for n in shares],
        )
    latencies = sorted(x for r in results for x in r["latencies"])
    errors = sum(r["errors"] for r in results)
    cpu_s = sum(r["cpu_s"] for r in results)

    def percentile(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
            if latencies
            else float("nan")
        )

    print(
        json.dumps(
            {
                "requests": len(latencies),
                "errors": errors,
                "rps": len(latencies) / args.duration,
                "p50_ms": percentile(0.50),
                "p99_ms": percentile(0.99),
                "cpu_s": cpu_s,
            }
        )
    )


if __name__ == "__main__":
    main()
