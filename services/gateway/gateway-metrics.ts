import { Code, ConnectError, defaultLatencyBuckets, prom } from "../shared/index.js";

/** How a request came: Clipper's REST, PredictionService over gRPC, Connect or gRPC-Web, or the Open Inference Protocol over HTTP or gRPC. */
export type Protocol = "rest" | "grpc" | "connect" | "grpc-web" | "oip-rest" | "oip-grpc";

/** The `outcome` label: a model's answer, the application's default, shed for overload, or an error. */
export type GatewayOutcome = "answered" | "default" | "shed" | "error";

/** The gateway's Prometheus series: requests by application, protocol and outcome, and their latency. */
export class GatewayMetrics {
  private readonly requests: prom.Counter<"application" | "protocol" | "outcome" | "code">;
  private readonly latency: prom.Histogram<"application" | "protocol" | "outcome">;
  /** Children by label values: prom-client hashes a label object on every call otherwise. */
  private readonly children = new Map<string, { requests: prom.Counter.Internal; latency: prom.Histogram.Internal<string> }>();

  constructor(registry: prom.Registry, latencyBuckets: readonly number[] = defaultLatencyBuckets) {
    this.requests = new prom.Counter({
      name: "clipper_gateway_requests_total",
      help: "Prediction and feedback requests, by application, protocol, outcome (answered, default, shed, error) and code (ok, or the gRPC code / HTTP status of the error).",
      labelNames: ["application", "protocol", "outcome", "code"],
      registers: [registry],
    });
    this.latency = new prom.Histogram({
      name: "clipper_gateway_request_duration_seconds",
      help: "End-to-end time from request to response at the gateway, by application, protocol and outcome.",
      labelNames: ["application", "protocol", "outcome"],
      buckets: [...latencyBuckets],
      registers: [registry],
    });
  }

  /**
   * Records one finished request. `application` must be a configured name
   * (or "unknown"), so that callers cannot grow the label set at will;
   * `result` is "ok", "default", or an error's code (errorOutcome, `http_<status>`).
   */
  observe(application: string, protocol: Protocol, result: string, startedAt: number): void {
    const key = `${application}\u0000${protocol}\u0000${result}`;
    let series = this.children.get(key);
    if (series === undefined) {
      const outcome = outcomeOf(result);
      const code = outcome === "answered" || outcome === "default" ? "ok" : result;
      series = { requests: this.requests.labels({ application, protocol, outcome, code }), latency: this.latency.labels({ application, protocol, outcome }) };
      this.children.set(key, series);
    }
    series.requests.inc();
    series.latency.observe((performance.now() - startedAt) / 1000);
  }
}

function outcomeOf(result: string): GatewayOutcome {
  if (result === "ok") return "answered";
  if (result === "default") return "default";
  if (result === "resource_exhausted" || result === "http_429") return "shed";
  return "error";
}

/** The code of a failed request: the lower-case gRPC code name, e.g. "not_found". */
export function errorOutcome(err: unknown): string {
  const code = err instanceof ConnectError ? err.code : Code.Internal;
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
