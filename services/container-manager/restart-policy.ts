import { Backoff } from "../shared/index.js";

export interface RestartPolicyOptions {
  /** First restart delay; doubles on each crash. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** A run this long (or longer) counts as stable and resets the delay. */
  stableAfterMs: number;
  /** Exits before ever becoming ready, in a row, after which the replica is FAILED. */
  maxStartFailures: number;
}

export const defaultRestartPolicy: RestartPolicyOptions = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  stableAfterMs: 60_000,
  maxStartFailures: 3,
};

export type RestartDecision = { action: "restart"; delayMs: number } | { action: "fail"; startFailures: number };

/**
 * What to do when a replica's process exits: restart after an exponential
 * delay, or give up when it keeps dying before it ever became ready.
 */
export class RestartPolicy {
  private readonly backoff: Backoff;
  private startFailures = 0;

  constructor(private readonly options: RestartPolicyOptions = defaultRestartPolicy) {
    this.backoff = new Backoff({ initialMs: options.initialDelayMs, maxMs: options.maxDelayMs, jitter: 0 });
  }

  /** `ranForMs`: how long the process ran; `becameReady`: whether it passed a health check in that run. */
  onExit(ranForMs: number, becameReady: boolean): RestartDecision {
    if (becameReady) this.startFailures = 0;
    else this.startFailures++;
    if (this.startFailures >= this.options.maxStartFailures) return { action: "fail", startFailures: this.startFailures };
    if (ranForMs >= this.options.stableAfterMs) this.backoff.reset();
    return { action: "restart", delayMs: this.backoff.next() };
  }
}
