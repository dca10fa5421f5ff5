import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

export type ServingState = "SERVING" | "NOT_SERVING";

/** The serving state of each service name ("" is the whole server), watchable. */
export class HealthStatus {
  private readonly states = new Map<string, ServingState>();
  private readonly listeners = new Set<() => void>();

  set(service: string, state: ServingState): void {
    if (this.states.get(service) === state) return;
    this.states.set(service, state);
    for (const l of this.listeners) l();
  }

  get(service: string): ServingState | undefined {
    return this.states.get(service);
  }

  all(): ReadonlyMap<string, ServingState> {
    return this.states;
  }

  /** Marks every service NOT_SERVING, as a server does while it drains. */
  shutdown(): void {
    for (const name of [...this.states.keys()]) this.set(name, "NOT_SERVING");
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const toWire = (s: ServingState | undefined) => (s === undefined ? Status.SERVICE_UNKNOWN : s === "SERVING" ? Status.SERVING : Status.NOT_SERVING);

/** grpc.health.v1.Health over a HealthStatus. */
export function createHealthImpl(status: HealthStatus, shutdown: AbortSignal): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const state = status.get(req.service);
      if (state === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return { status: toWire(state) };
    },
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const [name, state] of status.all()) statuses[name] = { status: toWire(state) };
      return { statuses };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted && !shutdown.aborted) {
        const now = toWire(status.get(req.service));
        if (now !== last) {
          last = now;
          yield { status: now };
        }
        await new Promise<void>((resolve) => {
          const off = status.onChange(done);
          ctx.signal.addEventListener("abort", done, { once: true });
          shutdown.addEventListener("abort", done, { once: true });
          function done() {
            off();
            ctx.signal.removeEventListener("abort", done);
            shutdown.removeEventListener("abort", done);
            resolve();
          }
        });
      }
    },
  };
}
