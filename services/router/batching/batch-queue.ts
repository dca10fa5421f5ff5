/** A queued item's place in a `BatchQueue`: the handle `remove` takes. */
export interface QueueNode<T> {
  readonly item: T;
  readonly deadline: number;
  /** When it was queued (clock ms): the wait window counts from the head's. */
  readonly enqueuedAt: number;
  /** Arrival order: first come, first served among equal deadlines. */
  readonly seq: number;
  /** Position in each of the two heaps; -1 once it has left the queue. */
  index: number;
  latestIndex: number;
}

/** Which end of the deadline order `take` serves. */
export type TakeOrder = "earliest" | "latest";

/**
 * The queries waiting for one model version, with a bound on their number,
 * served earliest deadline first, or latest first under overload (the
 * batcher decides). Two indexed binary heaps over the same nodes: push, pop
 * and remove (a cancelled query leaving) are O(log n) from either end, and
 * nothing is left behind as garbage.
 */
export class BatchQueue<T> {
  private readonly earliest = new IndexedHeap<QueueNode<T>>((a, b) => a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq), "index");
  // Latest deadline first, and among equals the newest: last come, first served.
  private readonly latest = new IndexedHeap<QueueNode<T>>((a, b) => a.deadline > b.deadline || (a.deadline === b.deadline && a.seq > b.seq), "latestIndex");
  private seq = 0;

  constructor(private maxLength: number) {}

  get length(): number {
    return this.earliest.size;
  }

  get capacity(): number {
    return this.maxLength;
  }

  setMaxLength(maxLength: number): void {
    this.maxLength = maxLength;
  }

  /** Whether `count` more items fit. */
  hasRoom(count: number): boolean {
    return this.length + count <= this.maxLength;
  }

  /** Queues an item; undefined when the queue is full (the caller refuses it explicitly). */
  push(item: T, deadline: number, now: number): QueueNode<T> | undefined {
    if (this.length >= this.maxLength) return undefined;
    const node: QueueNode<T> = { item, deadline, enqueuedAt: now, seq: this.seq++, index: -1, latestIndex: -1 };
    this.earliest.push(node);
    this.latest.push(node);
    return node;
  }

  /** The item with the earliest deadline, left in place. */
  peek(): QueueNode<T> | undefined {
    return this.earliest.top();
  }

  /** The item with the latest deadline (the newest among equals), left in place. */
  peekLatest(): QueueNode<T> | undefined {
    return this.latest.top();
  }

  /** Removes a queued item (its caller went away); false if it had already left. */
  remove(node: QueueNode<T>): boolean {
    if (!this.earliest.remove(node)) return false;
    this.latest.remove(node);
    return true;
  }

  /**
   * Takes up to `max` items whose deadline is after `now`, from the earliest
   * deadline on or (order "latest") from the latest back. Items whose deadline
   * has passed are dropped on the way, never returned: their callers have
   * already been answered with the default.
   */
  take(max: number, now: number, order: TakeOrder = "earliest"): T[] {
    const heap = order === "earliest" ? this.earliest : this.latest;
    const out: T[] = [];
    while (out.length < max) {
      const head = heap.top();
      if (head === undefined || (order === "latest" && head.deadline <= now)) break;
      this.remove(head);
      if (head.deadline > now) out.push(head.item);
    }
    return out;
  }

  /** Drops the items at the head whose deadline is at or before `now`. */
  dropExpired(now: number): number {
    let dropped = 0;
    for (let head = this.earliest.top(); head !== undefined && head.deadline <= now; head = this.earliest.top()) {
      this.remove(head);
      dropped++;
    }
    return dropped;
  }
}

/** A binary heap that keeps each node's position in its field `slot`, so any node can be removed in O(log n). */
class IndexedHeap<N extends { index: number; latestIndex: number }> {
  private readonly nodes: N[] = [];

  constructor(
    private readonly before: (a: N, b: N) => boolean,
    private readonly slot: "index" | "latestIndex",
  ) {}

  get size(): number {
    return this.nodes.length;
  }

  top(): N | undefined {
    return this.nodes[0];
  }

  push(node: N): void {
    this.place(node, this.nodes.length);
    this.nodes.push(node);
    this.up(node[this.slot]);
  }

  remove(node: N): boolean {
    const i = node[this.slot];
    if (i < 0 || this.nodes[i] !== node) return false;
    const last = this.nodes.pop() as N;
    this.place(node, -1);
    if (last !== node) {
      this.place(last, i);
      this.nodes[i] = last;
      this.down(i);
      this.up(last[this.slot]);
    }
    return true;
  }

  private place(node: N, i: number): void {
    node[this.slot] = i;
  }

  private up(i: number): void {
    const node = this.nodes[i] as N;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = this.nodes[parentIndex] as N;
      if (!this.before(node, parent)) break;
      this.nodes[i] = parent;
      this.place(parent, i);
      i = parentIndex;
    }
    this.nodes[i] = node;
    this.place(node, i);
  }

  private down(i: number): void {
    const n = this.nodes.length;
    const node = this.nodes[i] as N;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.before(this.nodes[right] as N, this.nodes[left] as N)) child = right;
      const c = this.nodes[child] as N;
      if (!this.before(c, node)) break;
      this.nodes[i] = c;
      this.place(c, i);
      i = child;
    }
    this.nodes[i] = node;
    this.place(node, i);
  }
}
