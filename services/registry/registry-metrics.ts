import { prom } from "../shared/index.js";
import type { RegistryStore } from "./store.js";

export interface RegistryMetricsSources {
  revision: () => bigint;
  watchers: () => number;
}

/** The registry's Prometheus series: revision, watch subscribers, and store latency. */
export class RegistryMetrics {
  private readonly storeDuration: prom.Histogram<"operation" | "outcome">;

  constructor(registry: prom.Registry, sources: RegistryMetricsSources, latencyBuckets: readonly number[]) {
    new prom.Gauge({
      name: "clipper_registry_revision",
      help: "Configuration revision (bumped by every committed change).",
      registers: [registry],
      collect() {
        this.set(Number(sources.revision()));
      },
    });
    new prom.Gauge({
      name: "clipper_registry_watchers",
      help: "Open WatchConfig streams (subscribers: routers, gateways, container-managers, CLIs).",
      registers: [registry],
      collect() {
        this.set(sources.watchers());
      },
    });
    this.storeDuration = new prom.Histogram({
      name: "clipper_registry_store_duration_seconds",
      help: "Time of store operations (load, commit, get_policy_state, swap_policy_state), by operation and outcome (ok, error).",
      labelNames: ["operation", "outcome"],
      buckets: [...latencyBuckets],
      registers: [registry],
    });
  }

  /** The store with every operation timed. */
  timed(store: RegistryStore): RegistryStore {
    const time = <T>(operation: string, run: () => Promise<T>): Promise<T> => {
      const end = this.storeDuration.startTimer({ operation });
      return run().then(
        (value) => {
          end({ outcome: "ok" });
          return value;
        },
        (err: unknown) => {
          end({ outcome: "error" });
          throw err;
        },
      );
    };
    return {
      load: () => time("load", () => store.load()),
      commit: (expected, changes) => time("commit", () => store.commit(expected, changes)),
      getPolicyState: (key) => time("get_policy_state", () => store.getPolicyState(key)),
      swapPolicyState: (key, expected, state) => time("swap_policy_state", () => store.swapPolicyState(key, expected, state)),
      clearPolicyStates: (application) => time("clear_policy_states", () => store.clearPolicyStates(application)),
      close: () => store.close(),
    };
  }
}
