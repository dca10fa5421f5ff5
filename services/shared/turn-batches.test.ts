import { describe, expect, it } from "vitest";
import { TurnBatches } from "./turn-batches.js";

describe("TurnBatches", () => {
  it("hands out what one turn of the event loop pushed as one batch, and ends after close with nothing lost", async () => {
    const batches = new TurnBatches<number>();
    const seen: number[][] = [];
    const done = (async () => {
      for await (const b of batches) seen.push(b);
    })();
    batches.push(1);
    batches.push(2);
    await new Promise((r) => setTimeout(r, 5));
    batches.push(3);
    batches.close();
    batches.push(4);
    await done;
    expect(seen).toEqual([[1, 2], [3]]);
  });
});
