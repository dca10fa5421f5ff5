import { prom } from "../shared/index.js";
import type { RegistryStore } from "./store.js";

export interface RegistryMetricsSources {
  revision: () => bigint;
  watchers: () => number;
}

/** The registry's Prometheus series: revision, watch subscribers, and store latency. */
export class RegistryMetrics {
  private readonly storeDuration: prom.Histogram<"operation" | "outcome">;
  private readonly policyEvictions: prom.Counter<"application">;
  private readonly policyUsers: prom.Gauge<"application">;
  private readonly policyUserBytes: prom.Gauge<"application">;

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
    this.policyEvictions = new prom.Counter({
      name: "clipper_registry_policy_state_evictions_total",
      help: "Users' learned policy states removed to keep an application within --max-policy-users and --max-policy-state-bytes (least recently used first).",
      labelNames: ["application"],
      registers: [registry],
    });
    this.policyUsers = new prom.Gauge({
      name: "clipper_registry_policy_users",
      help: "Users with a stored policy state, per application (as of its last update).",
      labelNames: ["application"],
      registers: [registry],
    });
    this.policyUserBytes = new prom.Gauge({
      name: "clipper_registry_policy_user_state_bytes",
      help: "Bytes of the users' stored policy states, per application (as of its last update).",
      labelNames: ["application"],
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
      swapPolicyState: async (key, expected, state, bounds) => {
        const swap = await time("swap_policy_state", () => store.swapPolicyState(key, expected, state, bounds));
        if (swap.applied && key.uid !== "") {
          if (swap.evicted > 0) this.policyEvictions.inc({ application: key.application }, swap.evicted);
          this.policyUsers.set({ application: key.application }, swap.users);
          this.policyUserBytes.set({ application: key.application }, swap.userBytes);
        }
        return swap;
      },
      clearPolicyStates: async (application) => {
        const cleared = await time("clear_policy_states", () => store.clearPolicyStates(application));
        this.policyUserBytes.set({ application }, 0);
        return cleared;
      },
      close: () => store.close(),
    };
  }
}
