import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type CacheLookup, type CacheTicket, PredictionCache } from "./prediction-cache.js";

const bytes = (...b: number[]) => new Uint8Array(b);
const noWaiter = () => {};
const ticketOf = (r: CacheLookup): CacheTicket => {
  if (r.kind !== "miss") throw new Error(`expected a miss, got ${r.kind}`);
  return r.ticket;
};

describe("PredictionCache", () => {
  it("misses, then hits the same model version and input", () => {
    const c = new PredictionCache();
    c.complete(ticketOf(c.lookup("m:1", bytes(1, 2), noWaiter)), "three");
    expect(c.lookup("m:1", bytes(1, 2), noWaiter)).toEqual({ kind: "hit", output: "three" });
    expect(c.lookup("m:2", bytes(1, 2), noWaiter).kind).toBe("miss");
    expect(c.lookup("m:1", bytes(1, 2, 0), noWaiter).kind).toBe("miss");
    expect(c.stats()).toMatchObject({ hits: 1, misses: 3, entries: 1 });
  });

  it("compares the full input, not the hash: colliding inputs never share an answer", () => {
    const c = new PredictionCache({ hash: () => 42 });
    c.complete(ticketOf(c.lookup("m:1", bytes(1), noWaiter)), "one");
    const second = c.lookup("m:1", bytes(2), noWaiter);
    expect(second.kind).toBe("miss");
    c.complete(ticketOf(second), "two");
    expect(c.lookup("m:1", bytes(1), noWaiter)).toEqual({ kind: "hit", output: "one" });
    expect(c.lookup("m:1", bytes(2), noWaiter)).toEqual({ kind: "hit", output: "two" });
    expect(c.lookup("m:2", bytes(1), noWaiter).kind).toBe("miss");
  });

  it("evicts to stay within its byte bound, sparing recently used entries (CLOCK)", () => {
    // Each entry here costs 137 bytes (1 input byte, a 1-char output, the key, the overhead): three fit.
    const c = new PredictionCache({ maxBytes: 600 });
    const put = (k: number) => c.complete(ticketOf(c.lookup("m:1", bytes(k), noWaiter)), "x");
    for (let k = 0; k < 4; k++) put(k);
    expect(c.stats()).toMatchObject({ entries: 4, evictions: 0 });
    expect(c.lookup("m:1", bytes(0), noWaiter).kind).toBe("hit");
    put(4);
    expect(c.stats()).toMatchObject({ entries: 4, evictions: 1 });
    expect(c.stats().bytes).toBeLessThanOrEqual(600);
    expect(c.lookup("m:1", bytes(0), noWaiter).kind).toBe("hit");
    expect(c.lookup("m:1", bytes(1), noWaiter).kind).toBe("miss");
    expect(c.lookup("m:1", bytes(4), noWaiter).kind).toBe("hit");
  });

  it("does not store an entry larger than a quarter of the cache", () => {
    const c = new PredictionCache({ maxBytes: 400 });
    c.complete(ticketOf(c.lookup("m:1", new Uint8Array(200), noWaiter)), "x");
    expect(c.stats().entries).toBe(0);
  });

  it("de-duplicates identical queries in flight: one model call, every waiter told", () => {
    const c = new PredictionCache();
    const heard: Array<string | undefined> = [];
    const ticket = ticketOf(c.lookup("m:1", bytes(7), noWaiter));
    expect(c.lookup("m:1", bytes(7), (o) => heard.push(o)).kind).toBe("joined");
    expect(c.lookup("m:1", bytes(7), (o) => heard.push(o)).kind).toBe("joined");
    c.complete(ticket, "seven");
    expect(heard).toEqual(["seven", "seven"]);
    expect(c.stats().deduplicated).toBe(2);

    const failed = ticketOf(c.lookup("m:1", bytes(8), noWaiter));
    c.lookup("m:1", bytes(8), (o) => heard.push(o));
    c.abandon(failed);
    c.complete(failed, "late");
    expect(heard).toEqual(["seven", "seven", undefined]);
    expect(c.lookup("m:1", bytes(8), noWaiter).kind).toBe("miss");
  });

  it("bounds the waiters: beyond the bound an identical query is a plain miss", () => {
    const c = new PredictionCache({ maxWaiters: 1 });
    ticketOf(c.lookup("m:1", bytes(1), noWaiter));
    expect(c.lookup("m:1", bytes(1), noWaiter).kind).toBe("joined");
    expect(c.lookup("m:1", bytes(1), noWaiter).kind).toBe("miss");
  });

  it("drops a model version's entries, including answers still in flight", () => {
    const c = new PredictionCache();
    c.complete(ticketOf(c.lookup("m:1", bytes(1), noWaiter)), "a");
    c.complete(ticketOf(c.lookup("m:2", bytes(1), noWaiter)), "b");
    const late = ticketOf(c.lookup("m:1", bytes(2), noWaiter));
    c.dropModelVersion("m:1");
    c.complete(late, "c");
    expect(c.lookup("m:1", bytes(1), noWaiter).kind).toBe("miss");
    expect(c.lookup("m:1", bytes(2), noWaiter).kind).toBe("miss");
    expect(c.lookup("m:2", bytes(1), noWaiter)).toEqual({ kind: "hit", output: "b" });
  });

  it("property: a hit always returns the output stored for exactly that input, within the byte bound", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3 }), { maxLength: 300 }), fc.boolean(), (inputs, collide) => {
        const c = new PredictionCache({ maxBytes: 2000, ...(collide ? { hash: (_m: string, input: Uint8Array) => input.length } : {}) });
        for (const input of inputs) {
          const r = c.lookup("m:1", input, noWaiter);
          const truth = `out-${[...input].join(",")}`;
          if (r.kind === "hit") expect(r.output).toBe(truth);
          else if (r.kind === "miss") c.complete(r.ticket, truth);
          expect(c.stats().bytes).toBeLessThanOrEqual(2000);
        }
      }),
    );
  });
});
