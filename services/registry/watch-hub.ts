import type { ConnectError } from "@connectrpc/connect";
import type { ConfigChange } from "../../gen/clipper/v1/resources_pb.js";
import { resourceExhausted } from "../shared/index.js";

/**
 * One WatchConfig subscriber: the changes published after it subscribed, in
 * order, in a buffer of at most `maxBacklog` changes. A subscriber that falls
 * further behind is ended with RESOURCE_EXHAUSTED, so that it reconnects and
 * starts again from a fresh snapshot instead of holding unbounded memory.
 */
export class WatchSubscription implements AsyncIterable<ConfigChange> {
  private readonly queue: ConfigChange[] = [];
  private ended: { error: ConnectError | undefined } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly maxBacklog: number,
    private readonly onClose: (s: WatchSubscription) => void,
  ) {}

  get backlog(): number {
    return this.queue.length;
  }

  push(changes: readonly ConfigChange[]): void {
    if (this.ended) return;
    if (this.queue.length + changes.length > this.maxBacklog) {
      this.end(resourceExhausted(`watch fell behind; reconnect (more than ${this.maxBacklog} changes unsent)`));
      return;
    }
    this.queue.push(...changes);
    this.notify();
  }

  /** Ends the stream: with an error the consumer sees it after the buffered changes are dropped. */
  end(error?: ConnectError): void {
    if (this.ended) return;
    this.ended = { error };
    if (error) this.queue.length = 0;
    this.onClose(this);
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ConfigChange> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.ended) {
          if (this.ended.error) throw this.ended.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.end();
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Fans published changes out to every subscriber. */
export class WatchHub {
  private readonly subscribers = new Set<WatchSubscription>();

  constructor(private readonly maxBacklog: number) {}

  get size(): number {
    return this.subscribers.size;
  }

  subscribe(): WatchSubscription {
    const s = new WatchSubscription(this.maxBacklog, (closed) => this.subscribers.delete(closed));
    this.subscribers.add(s);
    return s;
  }

  publish(changes: readonly ConfigChange[]): void {
    for (const s of [...this.subscribers]) s.push(changes);
  }

  endAll(error?: ConnectError): void {
    for (const s of [...this.subscribers]) s.end(error);
  }
}
