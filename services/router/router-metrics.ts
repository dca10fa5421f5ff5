import { prom } from "../shared/index.js";
import type { QueryOutcome } from "./query-processor.js";

/** The router's Prometheus series. */
export class RouterMetrics {
  private readonly queries: prom.Counter<"application" | "outcome">;
  private readonly feedback: prom.Counter<"application">;

  constructor(registry: prom.Registry) {
    this.queries = new prom.Counter({
      name: "clipper_router_queries_total",
      help: "Queries answered, by application and outcome (predicted or the reason for the default).",
      labelNames: ["application", "outcome"],
      registers: [registry],
    });
    this.feedback = new prom.Counter({
      name: "clipper_router_feedback_total",
      help: "Labelled inputs accepted as feedback, by application.",
      labelNames: ["application"],
      registers: [registry],
    });
  }

  countQueries(application: string, outcomes: readonly { outcome: QueryOutcome }[]): void {
    const byOutcome = new Map<QueryOutcome, number>();
    for (const { outcome } of outcomes) byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    for (const [outcome, n] of byOutcome) this.queries.inc({ application, outcome }, n);
  }

  countFeedback(application: string, accepted: number): void {
    this.feedback.inc({ application }, accepted);
  }
}
