/**
 * Items pushed during one turn of the event loop, handed out together: the
 * batching of a stream that carries many calls per message (QueryStream, on
 * both its sides). Iterating yields one array per turn that pushed anything;
 * after `close()` it yields what is still pending, then ends. Bounded by its
 * producers: each pushes at most one item per call it has open.
 */
export class TurnBatches<T> implements AsyncIterable<T[]> {
  private items: T[] = [];
  private flushScheduled = false;
  private closed = false;
  private wake: (() => void) | undefined;

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.notify();
    });
  }

  /** No more items: the iterator hands out what is pending, then ends. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T[]> {
    for (;;) {
      if (this.items.length > 0 && !this.flushScheduled) {
        const batch = this.items;
        this.items = [];
        yield batch;
        continue;
      }
      if (this.closed && this.items.length === 0) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
