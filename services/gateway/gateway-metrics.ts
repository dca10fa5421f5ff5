import { Code, ConnectError, prom } from "../shared/index.js";

export type Protocol = "rest" | "grpc" | "connect" | "grpc-web";

/** The gateway's Prometheus series: requests by application, protocol and outcome, and their latency. */
export class GatewayMetrics {
  private readonly requests: prom.Counter<"application" | "protocol" | "outcome">;
  private readonly latency: prom.Histogram<"protocol">;

  constructor(registry: prom.Registry) {
    this.requests = new prom.Counter({
      name: "clipper_gateway_requests_total",
      help: "Prediction and feedback requests, by application, protocol and outcome (ok, default, or the error code).",
      labelNames: ["application", "protocol", "outcome"],
      registers: [registry],
    });
    this.latency = new prom.Histogram({
      name: "clipper_gateway_request_duration_seconds",
      help: "Time from request to response at the gateway.",
      labelNames: ["protocol"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  /**
   * Records one finished request. `application` must be a configured name
   * (or "unknown"), so that callers cannot grow the label set at will.
   */
  observe(application: string, protocol: Protocol, outcome: string, startedAt: number): void {
    this.requests.inc({ application, protocol, outcome });
    this.latency.observe({ protocol }, (performance.now() - startedAt) / 1000);
  }
}

/** The outcome label of a failed request: the lower-case gRPC code name, e.g. "not_found". */
export function errorOutcome(err: unknown): string {
  const code = err instanceof ConnectError ? err.code : Code.Internal;
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
