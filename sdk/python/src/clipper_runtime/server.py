"""Serving a model: `ModelServer` (start/stop, for tests and embedding) and
`serve` (one blocking call, stops cleanly on SIGTERM/SIGINT)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clipper.model.v1 import model_service_pb2_grpc

from .input_types import input_type_name, parse_input_type
from .model_service import ModelServicer, resolve_predict
from .observability import PredictObserver, setup_tracing

log = logging.getLogger("clipper_runtime")

MODEL_SERVICE_NAME = "clipper.model.v1.ModelService"
# Bounds one request (a whole batch) and the number of calls held at once;
# beyond them callers get RESOURCE_EXHAUSTED instead of unbounded queueing.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_CONCURRENT_RPCS = 256
DEFAULT_HOST = "127.0.0.1"


class ModelServer:
    """A ModelService + grpc.health.v1 server for one model.

    `model` is a function `predict(inputs: list) -> list[str]` or an object
    with such a `.predict` method. `port=0` binds a free port; `start()`
    returns the bound port.
    """

    def __init__(
        self,
        model: Any,
        name: str = "model",
        version: str | int = "1",
        input_type: str | int = "doubles",
        port: int = 0,
        host: str = DEFAULT_HOST,
        concurrency: int = 1,
        max_workers: int = 8,
        metrics_port: int | None = None,
    ) -> None:
        self.name = name
        self.version = str(version)
        self.input_type = parse_input_type(input_type)
        self.host = host
        self._requested_port = int(port)
        self._max_workers = max(1, max_workers)
        self.port: int | None = None
        # None: no metrics server; 0: a free port (see metrics_port after start()).
        self._requested_metrics_port = metrics_port
        self.metrics_port: int | None = None
        self._observer = PredictObserver(name, self.version)
        self._observer.use_tracing()
        self._servicer = ModelServicer(
            resolve_predict(model), name, self.version, self.input_type, concurrency, self._observer
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        self._server: grpc.Server | None = None

    def start(self) -> int:
        if self._server is not None:
            raise RuntimeError("server already started")
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        address = f"[{self.host}]" if ":" in self.host else self.host
        try:
            port = server.add_insecure_port(f"{address}:{self._requested_port}")
        except RuntimeError as error:
            raise OSError(f"cannot bind {self.host}:{self._requested_port}: {error}") from error
        if port == 0:
            raise OSError(f"cannot bind {self.host}:{self._requested_port}")
        if self._requested_metrics_port is not None:
            self.metrics_port = self._observer.start_metrics(self._requested_metrics_port, self.host)
        server.start()
        self._server = server
        self.port = port
        # The model is already loaded (we were given it), so we are ready at once.
        for service in ("", MODEL_SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace: float | None = 5.0) -> None:
        """Reports NOT_SERVING, lets calls in flight finish within `grace`, ends
        the PredictStreams as soon as their batches are answered, stops."""
        server, self._server = self._server, None
        if server is None:
            return
        self._health.enter_graceful_shutdown()
        stopped = server.stop(grace)
        # New calls are refused from here on; streams end as soon as their batches are answered.
        self._servicer.drain()
        stopped.wait()
        self._observer.stop_metrics()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        if self._server is None:
            return True
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> ModelServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    model: Any,
    name: str | None = None,
    version: str | int | None = None,
    input_type: str | int | None = None,
    port: int | None = None,
    host: str | None = None,
    concurrency: int = 1,
) -> None:
    """Serves `model` until SIGTERM or SIGINT. Unset arguments come from
    CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE,
    CLIPPER_MODEL_PORT and CLIPPER_MODEL_HOST. CLIPPER_METRICS_PORT serves
    Prometheus metrics there; OTEL_TRACES_EXPORTER=otlp turns tracing on."""
    env = os.environ
    model_name = name if name is not None else env.get("CLIPPER_MODEL_NAME", "model")
    tracer_provider = setup_tracing(f"clipper-model-{model_name}")
    metrics_port = env.get("CLIPPER_METRICS_PORT", "")
    server = ModelServer(
        model,
        name=model_name,
        version=version if version is not None else env.get("CLIPPER_MODEL_VERSION", "1"),
        input_type=input_type if input_type is not None else env.get("CLIPPER_INPUT_TYPE", "doubles"),
        port=port if port is not None else int(env.get("CLIPPER_MODEL_PORT", "7000")),
        host=host if host is not None else env.get("CLIPPER_MODEL_HOST", DEFAULT_HOST),
        concurrency=concurrency,
        metrics_port=int(metrics_port) if metrics_port.strip() else None,
    )
    stop_requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop_requested.set())
    bound = server.start()
    metrics_note = f"; metrics on {server.host}:{server.metrics_port}" if server.metrics_port else ""
    print(
        f"clipper_runtime: model {server.name}:{server.version} "
        f"({input_type_name(server.input_type)}) listening on {server.host}:{bound}{metrics_note}",
        flush=True,
    )
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop_requested.wait(0.5):
            pass
    finally:
        log.info("stopping model server")
        server.stop()
        if tracer_provider is not None:
            # Exports the spans still buffered.
            tracer_provider.shutdown()
