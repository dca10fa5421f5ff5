/** A queued item's place in a `BatchQueue`: the handle `remove` takes. */
export interface QueueNode<T> {
  readonly item: T;
  readonly deadline: number;
  /** When it was queued (clock ms): the wait window counts from the head's. */
  readonly enqueuedAt: number;
  /** Arrival order: first come, first served among equal deadlines. */
  readonly seq: number;
  /** Position in the heap; -1 once it has left the queue. */
  index: number;
}

/**
 * The queries waiting for one model version, earliest deadline first, with a
 * bound on their number. An indexed binary heap: push, pop and remove (a
 * cancelled query leaving) are O(log n); nothing is left behind as garbage.
 */
export class BatchQueue<T> {
  private readonly heap: QueueNode<T>[] = [];
  private seq = 0;

  constructor(private maxLength: number) {}

  get length(): number {
    return this.heap.length;
  }

  get capacity(): number {
    return this.maxLength;
  }

  setMaxLength(maxLength: number): void {
    this.maxLength = maxLength;
  }

  /** Whether `count` more items fit. */
  hasRoom(count: number): boolean {
    return this.heap.length + count <= this.maxLength;
  }

  /** Queues an item; undefined when the queue is full (the caller refuses it explicitly). */
  push(item: T, deadline: number, now: number): QueueNode<T> | undefined {
    if (this.heap.length >= this.maxLength) return undefined;
    const node: QueueNode<T> = { item, deadline, enqueuedAt: now, seq: this.seq++, index: this.heap.length };
    this.heap.push(node);
    this.up(node.index);
    return node;
  }

  /** The item with the earliest deadline, left in place. */
  peek(): QueueNode<T> | undefined {
    return this.heap[0];
  }

  /** Removes a queued item (its caller went away); false if it had already left. */
  remove(node: QueueNode<T>): boolean {
    const i = node.index;
    if (i < 0 || this.heap[i] !== node) return false;
    const last = this.heap.pop() as QueueNode<T>;
    node.index = -1;
    if (last !== node) {
      this.heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
    return true;
  }

  /**
   * Takes up to `max` items whose deadline is after `now`, earliest first.
   * Items whose deadline has passed are dropped on the way, never returned:
   * their callers have already been answered with the default.
   */
  take(max: number, now: number): T[] {
    const out: T[] = [];
    while (out.length < max) {
      const head = this.heap[0];
      if (head === undefined) break;
      this.remove(head);
      if (head.deadline > now) out.push(head.item);
    }
    return out;
  }

  /** Drops the items at the head whose deadline is at or before `now`. */
  dropExpired(now: number): number {
    let dropped = 0;
    for (let head = this.heap[0]; head !== undefined && head.deadline <= now; head = this.heap[0]) {
      this.remove(head);
      dropped++;
    }
    return dropped;
  }

  private before(a: QueueNode<T>, b: QueueNode<T>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private up(i: number): void {
    const node = this.heap[i] as QueueNode<T>;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = this.heap[parentIndex] as QueueNode<T>;
      if (!this.before(node, parent)) break;
      this.heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    this.heap[i] = node;
    node.index = i;
  }

  private down(i: number): void {
    const n = this.heap.length;
    const node = this.heap[i] as QueueNode<T>;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.before(this.heap[right] as QueueNode<T>, this.heap[left] as QueueNode<T>)) child = right;
      const c = this.heap[child] as QueueNode<T>;
      if (!this.before(c, node)) break;
      this.heap[i] = c;
      c.index = i;
      i = child;
    }
    this.heap[i] = node;
    node.index = i;
  }
}
