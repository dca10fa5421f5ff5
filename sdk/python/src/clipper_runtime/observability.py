"""Metrics and traces of a model container.

Metrics: with CLIPPER_METRICS_PORT set (the container-manager sets it to a
free port), the runtime serves Prometheus text at http://<host>:<port>/metrics
from a registry of its own: requests, batch sizes and time in predict.

Traces: off unless OTEL_TRACES_EXPORTER names "otlp" or "console" (the
standard OpenTelemetry variables; the OTLP exporter speaks HTTP/protobuf and
reads OTEL_EXPORTER_OTLP_ENDPOINT itself). Each batch (a Predict call or a PredictStream message) is a SERVER span
continuing the caller's W3C `traceparent` (the router's batch span).

Both need optional packages (prometheus-client; opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-http): when missing, the runtime logs why
and serves without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("clipper_runtime")

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PredictObserver:
    """Records each batch; a no-op unless metrics or tracing are on."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self._metrics: _Metrics | None = None
        self._tracer: Any = None
        self._propagator: Any = None
        self._http_server: Any = None

    def start_metrics(self, port: int, host: str) -> int | None:
        """Serves /metrics on host:port; returns the bound port, or None without prometheus-client."""
        try:
            import prometheus_client
        except ImportError:
            log.warning("CLIPPER_METRICS_PORT is set but prometheus-client is not installed: no metrics")
            return None
        self._metrics = _Metrics(prometheus_client, self.name, self.version)
        server, _thread = prometheus_client.start_http_server(port, addr=host, registry=self._metrics.registry)
        self._http_server = server
        return int(server.server_port)

    def stop_metrics(self) -> None:
        server, self._http_server = self._http_server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def use_tracing(self) -> None:
        """Continues traces through the globally configured tracer provider (see setup_tracing)."""
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            return
        self._tracer = trace.get_tracer("clipper_runtime")
        self._propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def predict(
        self, trace_carrier: Callable[[], dict[str, str]], batch_size: int, batch_id: int
    ) -> Iterator[PredictRecord]:
        """Observes one batch. `trace_carrier` gives the caller's W3C trace
        context (gRPC metadata of a unary call, fields of a stream message);
        it is only asked for when tracing is on."""
        record = PredictRecord()
        started = time.perf_counter()
        span_cm: Any = contextlib.nullcontext(None)
        if self._tracer is not None:
            carrier = trace_carrier()
            from opentelemetry.trace import SpanKind

            span_cm = self._tracer.start_as_current_span(
                "clipper.model.v1.ModelService/Predict",
                context=self._propagator.extract(carrier),
                kind=SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "clipper.model": self.name,
                    "clipper.model_version": self.version,
                    "clipper.batch_size": batch_size,
                    "clipper.batch_id": batch_id,
                },
            )
        with span_cm as span:
            try:
                yield record
            finally:
                elapsed = time.perf_counter() - started
                if span is not None:
                    span.set_attribute("clipper.outcome", record.outcome)
                    span.set_attribute("clipper.output_errors", record.output_errors)
                    if record.outcome != "ok":
                        from opentelemetry.trace import Status, StatusCode

                        span.set_status(Status(StatusCode.ERROR, record.outcome))
                if self._metrics is not None:
                    self._metrics.observe(batch_size, elapsed, record)


class PredictRecord:
    """What one batch ended with: "ok", "model_error" (it raised) or "invalid_input"."""

    def __init__(self) -> None:
        self.outcome = "ok"
        self.output_errors = 0


class _Metrics:
    def __init__(self, prom: Any, name: str, version: str) -> None:
        self.registry = prom.CollectorRegistry()
        self.labels = {"model": name, "version": version}
        self.requests = prom.Counter(
            "clipper_model_requests",
            "Batches (Predict calls and PredictStream messages), by outcome (ok, model_error, invalid_input).",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.inputs = prom.Counter(
            "clipper_model_inputs",
            "Inputs predicted, by outcome of their output (ok, error).",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.batch_size = prom.Histogram(
            "clipper_model_batch_size",
            "Inputs per batch.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predict_seconds = prom.Histogram(
            "clipper_model_predict_duration_seconds",
            "Time to answer one batch (unpacking, the model's predict, packing).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, batch_size: int, seconds: float, record: PredictRecord) -> None:
        self.requests.labels(outcome=record.outcome, **self.labels).inc()
        if record.outcome != "invalid_input":
            self.batch_size.labels(**self.labels).observe(batch_size)
            self.inputs.labels(outcome="ok", **self.labels).inc(batch_size - record.output_errors)
            self.inputs.labels(outcome="error", **self.labels).inc(record.output_errors)
        self.predict_seconds.labels(**self.labels).observe(seconds)


def tracing_requested(env: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names (none: tracing is off, Clipper's default)."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    return [n for n in names if n and n != "none"]


def setup_tracing(service_name: str) -> Any:
    """Installs a tracer provider from the OTEL_* variables; returns it (to shut down), or None when off."""
    exporters = tracing_requested()
    if not exporters:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed: no traces")
        return None
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name, "service.namespace": "clipper"}
    )
    provider = TracerProvider(resource=resource)
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("OTEL_TRACES_EXPORTER: unsupported exporter %r (supported: otlp, console, none)", name)
    trace.set_tracer_provider(provider)
    return provider
