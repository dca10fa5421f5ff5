import { create } from "@bufbuild/protobuf";
import type { Replica, ReplicaSet } from "../../gen/clipper/v1/resources_pb.js";
import { ReplicaSetSchema } from "../../gen/clipper/v1/resources_pb.js";
import { Code, ConnectError, type Logger } from "../shared/index.js";
import { replicaKey } from "./backends/replica-backend.js";

export interface ReplicaReporterOptions {
  /** Sends one version's observed replicas (ManagementService.ReportReplicas). */
  report: (set: ReplicaSet) => Promise<void>;
  /** The replicas observed now. */
  replicas: () => Replica[];
  logger: Logger;
  retryDelayMs?: number;
}

/**
 * Tells the registry about replica changes, one ReplicaSet per model version.
 * Changes to one version coalesce (the latest state is sent), one report is
 * in flight at a time, and failed reports are retried; pending work is
 * bounded by the number of model versions.
 */
export class ReplicaReporter {
  private readonly dirty = new Map<string, { modelName: string; modelVersion: string }>();
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ReplicaReporterOptions) {}

  markDirty(modelName: string, modelVersion: string): void {
    if (this.closed) return;
    this.dirty.set(replicaKey(modelName, modelVersion), { modelName, modelVersion });
    this.kick();
  }

  /** Resolves when nothing is left to report (or a retry is pending). */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.dirty.clear();
  }

  private kick(): void {
    if (this.running !== undefined || this.retryTimer !== undefined) return;
    this.running = this.drain().finally(() => (this.running = undefined));
  }

  private async drain(): Promise<void> {
    while (!this.closed && this.dirty.size > 0) {
      const [key, target] = this.dirty.entries().next().value as [string, { modelName: string; modelVersion: string }];
      this.dirty.delete(key);
      const set = create(ReplicaSetSchema, {
        ...target,
        replicas: this.options.replicas().filter((r) => r.modelName === target.modelName && r.modelVersion === target.modelVersion),
      });
      try {
        await this.options.report(set);
      } catch (err) {
        // A deleted model's replicas need no report; anything else is retried.
        if (err instanceof ConnectError && err.code === Code.NotFound) continue;
        this.options.logger.warn({ err: String(err), model: target.modelName, version: target.modelVersion }, "replica report failed; will retry");
        if (!this.dirty.has(key)) this.dirty.set(key, target);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, this.options.retryDelayMs ?? 1000);
        return;
      }
    }
  }
}
