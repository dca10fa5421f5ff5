import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BatchQueue, type QueueNode } from "./batch-queue.js";

describe("BatchQueue", () => {
  it("hands out earliest deadline first, first come first served among equals", () => {
    const q = new BatchQueue<string>(10);
    q.push("late", 50, 0);
    q.push("a", 10, 0);
    q.push("b", 10, 0);
    q.push("mid", 20, 0);
    expect(q.take(3, 0)).toEqual(["a", "b", "mid"]);
    expect(q.take(3, 0)).toEqual(["late"]);
    expect(q.length).toBe(0);
  });

  it("under overload, hands out the latest deadline first, the newest among equals, and never an expired item", () => {
    const q = new BatchQueue<string>(10);
    q.push("old", 10, 0);
    q.push("a", 50, 0);
    q.push("b", 50, 0);
    q.push("mid", 20, 0);
    expect(q.take(3, 0, "latest")).toEqual(["b", "a", "mid"]);
    q.push("newest", 60, 0);
    expect(q.take(3, 15, "latest")).toEqual(["newest"]);
    // "old" expired at 10: it is never handed out, and the earliest end drops it.
    expect(q.length).toBe(1);
    expect(q.dropExpired(15)).toBe(1);
    expect(q.length).toBe(0);
  });

  it("refuses at once when full and accepts again when room is made", () => {
    const q = new BatchQueue<number>(2);
    expect(q.push(1, 10, 0)).toBeDefined();
    const second = q.push(2, 10, 0) as QueueNode<number>;
    expect(q.push(3, 10, 0)).toBeUndefined();
    expect(q.hasRoom(1)).toBe(false);
    q.remove(second);
    expect(q.hasRoom(1)).toBe(true);
    expect(q.push(3, 10, 0)).toBeDefined();
  });

  it("never returns an item whose deadline has passed", () => {
    const q = new BatchQueue<string>(10);
    q.push("expired", 5, 0);
    q.push("exactly-now", 10, 0);
    q.push("alive", 11, 0);
    expect(q.take(10, 10)).toEqual(["alive"]);
    q.push("old", 1, 0);
    q.push("new", 100, 0);
    expect(q.dropExpired(50)).toBe(1);
    expect(q.take(10, 50)).toEqual(["new"]);
  });

  it("removes cancelled items wherever they are, once", () => {
    const q = new BatchQueue<number>(10);
    const nodes = [5, 3, 8, 1, 9].map((d) => q.push(d, d, 0) as QueueNode<number>);
    expect(q.remove(nodes[1] as QueueNode<number>)).toBe(true);
    expect(q.remove(nodes[1] as QueueNode<number>)).toBe(false);
    expect(q.take(10, 0)).toEqual([1, 5, 8, 9]);
  });

  it("keeps heap order under any mix of pushes, removals and takes", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ push: fc.integer({ min: 0, max: 100 }) }),
            fc.record({ remove: fc.nat() }),
            fc.record({ take: fc.integer({ min: 1, max: 5 }), latest: fc.boolean() }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const q = new BatchQueue<number>(50);
          const live: QueueNode<number>[] = [];
          for (const op of ops) {
            if ("push" in op) {
              const node = q.push(op.push, op.push, 0);
              if (node) live.push(node);
              else expect(live.length).toBe(50);
              expect(q.peek()?.deadline).toBe(Math.min(...live.map((n) => n.deadline)));
              expect(q.peekLatest()?.deadline).toBe(Math.max(...live.map((n) => n.deadline)));
            } else if ("remove" in op) {
              if (live.length === 0) continue;
              const [node] = live.splice(op.remove % live.length, 1);
              expect(q.remove(node as QueueNode<number>)).toBe(true);
            } else {
              const taken = q.take(op.take, -1, op.latest ? "latest" : "earliest");
              const sorted = [...live].sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
              const expected = (op.latest ? sorted.reverse() : sorted).slice(0, op.take);
              expect(taken).toEqual(expected.map((n) => n.item));
              for (const n of expected) live.splice(live.indexOf(n), 1);
            }
            expect(q.length).toBe(live.length);
          }
        },
      ),
    );
  });
});
