"""Where a cheap model's time goes in the Python model runtime (sdk/python/src/clipper_runtime).

    .venv/bin/python bench/runtime_overhead.py [--calls N] [--json OUT]

Measures, for the no-op model and batches of 1..256 inputs of 8 doubles:
1. each step of ModelServicer.Predict in-process, without gRPC: parsing the
   request, unpack_inputs, the model, fill_outputs (building the response) and
   serialising the response;
2. sequential round trips over gRPC from this process to a runtime server
   (file_runner in a child process), with the server's CPU per call read from
   /proc, as unary Predict calls and as batches on one PredictStream (how the
   router sends them); and the same against a bare grpcio server in a child
   process whose handlers answer fixed bytes (the floor of grpcio's sync server).
Uses the repository's .venv (grpcio, numpy); changes nothing in sdk/python.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "sdk" / "python" / "src"))

import grpc  # noqa: E402

from clipper.common.v1 import data_pb2  # noqa: E402
from clipper.model.v1 import model_service_pb2  # noqa: E402
from clipper_runtime.inputs import pack_inputs, unpack_inputs  # noqa: E402
from clipper_runtime.model_service import ModelServicer, fill_outputs  # noqa: E402

PREDICT_PATH = "/clipper.model.v1.ModelService/Predict"
PREDICT_STREAM_PATH = "/clipper.model.v1.ModelService/PredictStream"
DOUBLES = data_pb2.INPUT_TYPE_DOUBLES


def noop(inputs):
    return ["0"] * len(inputs)


def per_call_us(fn, calls: int) -> float:
    for _ in range(min(200, calls)):
        fn()
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1000


def in_process(batch: int, calls: int) -> dict:
    inputs = pack_inputs([[float(i + j) for j in range(8)] for i in range(batch)], DOUBLES)
    request_bytes = model_service_pb2.PredictRequest(inputs=inputs, batch_id=1).SerializeToString()
    request = model_service_pb2.PredictRequest.FromString(request_bytes)
    unpacked = unpack_inputs(request.inputs, DOUBLES)
    result = noop(unpacked)
    response = model_service_pb2.PredictResponse()
    fill_outputs(response.outputs, result, batch)
    servicer = ModelServicer(noop, "noop", "1", DOUBLES)
    steps = {
        "parse request": lambda: model_service_pb2.PredictRequest.FromString(request_bytes),
        "unpack_inputs": lambda: unpack_inputs(request.inputs, DOUBLES),
        "model (no-op)": lambda: noop(unpacked),
        "fill_outputs (build the response)": lambda: fill_outputs(model_service_pb2.PredictResponse().outputs, result, batch),
        "serialise response": lambda: response.SerializeToString(),
        "whole Predict handler": lambda: servicer.Predict(request, None),
    }
    return {name: per_call_us(fn, calls) for name, fn in steps.items()}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(argv: list[str], env: dict) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    port = int(line.rsplit(":", 1)[1]) if "listening on" in line else 0
    if port == 0:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, port


def round_trips(port: int, pid: int, batch: int, calls: int) -> dict:
    inputs = pack_inputs([[float(i + j) for j in range(8)] for i in range(batch)], DOUBLES)
    payload = model_service_pb2.PredictRequest(inputs=inputs, batch_id=1).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(PREDICT_PATH)  # bytes in, bytes out: no client-side protobuf work
        for _ in range(200):
            call(payload, timeout=10)
        cpu_before = cpu_seconds(pid)
        start = time.perf_counter_ns()
        for _ in range(calls):
            call(payload, timeout=10)
        wall = (time.perf_counter_ns() - start) / calls / 1000
        server_cpu = (cpu_seconds(pid) - cpu_before) / calls * 1e6
    return {"round trip us": wall, "server CPU us per call": server_cpu}


def stream_round_trips(port: int, pid: int, batch: int, calls: int) -> dict:
    """Batches one at a time on one PredictStream, as the router sends them to a replica."""
    import queue

    inputs = pack_inputs([[float(i + j) for j in range(8)] for i in range(batch)], DOUBLES)
    payload = model_service_pb2.PredictStreamRequest(inputs=inputs, batch_id=1).SerializeToString()
    outgoing: queue.Queue = queue.Queue()

    def requests():
        while (item := outgoing.get()) is not None:
            yield item

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answers = channel.stream_stream(PREDICT_STREAM_PATH)(requests(), timeout=600)

        def one() -> None:
            outgoing.put(payload)
            next(answers)

        for _ in range(200):
            one()
        cpu_before = cpu_seconds(pid)
        start = time.perf_counter_ns()
        for _ in range(calls):
            one()
        wall = (time.perf_counter_ns() - start) / calls / 1000
        server_cpu = (cpu_seconds(pid) - cpu_before) / calls * 1e6
        outgoing.put(None)
    return {"round trip us": wall, "server CPU us per batch": server_cpu}


def bare_server(port_file: str) -> None:
    """A grpcio sync server (same options as the runtime) whose Predict and PredictStream answer fixed bytes."""
    response = model_service_pb2.PredictResponse(outputs=[data_pb2.Output(value="0")]).SerializeToString()
    streamed = model_service_pb2.PredictStreamResponse(batch_id=1, outputs=[data_pb2.Output(value="0")]).SerializeToString()

    def stream(requests, ctx):
        for _ in requests:
            yield streamed

    handler = grpc.method_handlers_generic_handler(
        "clipper.model.v1.ModelService",
        {
            "Predict": grpc.unary_unary_rpc_method_handler(lambda req, ctx: response),
            "PredictStream": grpc.stream_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), maximum_concurrent_rpcs=256)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"bare grpcio server listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--json")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server("")
        return 0

    report: dict = {"python": sys.version.split()[0], "grpcio": grpc.__version__, "in_process_us": {}, "grpc": {}}
    for batch in (1, 16, 64, 256):
        report["in_process_us"][batch] = in_process(batch, args.calls)

    env = {**os.environ, "PYTHONPATH": str(REPO / "sdk" / "python" / "src"), "CLIPPER_INPUT_TYPE": "doubles", "CLIPPER_MODEL_PORT": "0"}
    runtime, runtime_port = start_server(
        [sys.executable, "-m", "clipper_runtime.file_runner", str(REPO / "bench" / "models" / "noop.py"), "predict"], env
    )
    bare, bare_port = start_server([sys.executable, __file__, "--bare-server"], env)
    try:
        for batch in (1, 64):
            report["grpc"][f"runtime batch {batch}"] = round_trips(runtime_port, runtime.pid, batch, args.calls)
        report["grpc"]["bare grpcio server batch 1"] = round_trips(bare_port, bare.pid, 1, args.calls)
        for batch in (1, 64):
            report["grpc"][f"runtime PredictStream batch {batch}"] = stream_round_trips(runtime_port, runtime.pid, batch, args.calls)
        report["grpc"]["bare grpcio server PredictStream batch 1"] = stream_round_trips(bare_port, bare.pid, 1, args.calls)
    finally:
        for proc in (runtime, bare):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    for batch, steps in report["in_process_us"].items():
        print(f"in-process, batch {batch}: " + ", ".join(f"{k} {v:.1f} us" for k, v in steps.items()))
    for name, numbers in report["grpc"].items():
        print(f"over gRPC, {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in numbers.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
