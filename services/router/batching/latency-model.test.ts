import { describe, expect, it } from "vitest";
import { BatchSizer } from "./batch-sizer.js";
import { LatencyModel } from "./latency-model.js";

describe("LatencyModel", () => {
  it("predicts nothing until it has seen enough batches of at least two sizes", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 20; i++) m.observe(4, 3);
    expect(m.ready()).toBe(false);
    expect(m.p99(4)).toBeUndefined();
    expect(m.recentMeanMs()).toBeCloseTo(3);
    m.observe(8, 5);
    for (let i = 0; i < 8; i++) m.observe(8, 5);
    expect(m.ready()).toBe(true);
  });

  it("learns a fixed cost plus a cost per item", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 64; i++) {
      const size = 1 + (i % 16);
      m.observe(size, 2 + 0.05 * size);
    }
    expect(m.fixedCostMs()).toBeCloseTo(2, 6);
    expect(m.p99(100)).toBeCloseTo(7, 6);
    expect(m.mostInTime(4, 4096)).toBe(40);
    expect(m.mostInTime(4, 16)).toBe(16);
    expect(m.mostInTime(1, 4096)).toBe(0);
  });

  it("adds the 99th percentile of the residuals, so rare slow batches count", () => {
    const m = new LatencyModel();
    for (let i = 0; i < 100; i++) m.observe(1 + (i % 2), i % 50 === 0 ? 30 : 1);
    const p99 = m.p99(1) as number;
    expect(p99).toBeGreaterThan(20);
  });

  it("follows a replica that changes: old batches leave the window", () => {
    const m = new LatencyModel({ window: 16, minSamples: 8, refitEvery: 1 });
    for (let i = 0; i < 16; i++) m.observe(1 + (i % 4), 1);
    for (let i = 0; i < 16; i++) m.observe(1 + (i % 4), 10 * (1 + (i % 4)));
    expect(m.p99(2)).toBeCloseTo(20, 6);
  });

  it("sizes for the most answers in time, so a few slow batches do not shrink every batch", () => {
    const m = new LatencyModel();
    // 20 + 0.5n ms, but 2 batches in 100 took 60 ms longer (a hiccup of a shared CPU).
    for (let i = 0; i < 100; i++) m.observe(1 + (i % 16), 20 + 0.5 * (1 + (i % 16)) + (i % 50 === 7 ? 60 : 0));
    // The p99 margin alone says only a batch of a handful fits 40 ms; 98 of 100 batches of 16 would have made it.
    expect(m.p99(4) as number).toBeGreaterThan(40);
    expect(m.mostInTime(40, 16)).toBe(16);
  });
});

describe("BatchSizer", () => {
  it("uses AIMD without a model: grows after full batches in time, shrinks after a miss", () => {
    const s = new BatchSizer({ initialLimit: 4, additiveStep: 2, decreaseFactor: 0.5, hardMax: 100 });
    expect(s.size(100, 0)).toBe(4);
    s.observe(2, 1, 100);
    expect(s.size(100, 0)).toBe(4);
    s.observe(4, 1, 100);
    expect(s.size(100, 0)).toBe(6);
    s.observe(6, 200, 100);
    expect(s.size(100, 0)).toBe(3);
    expect(s.size(100, 2)).toBe(2);
  });

  it("with a model, takes the batch that answers the most in time, growing at most twofold", () => {
    const s = new BatchSizer({ initialLimit: 4, additiveStep: 2, decreaseFactor: 0.5, hardMax: 1000 });
    for (let i = 0; i < 16; i++) {
      const size = 1 + (i % 8);
      s.observe(size, 2 + 0.1 * size, 100);
    }
    expect(s.size(1000, 0)).toBe(16);
    expect(s.size(3, 0)).toBe(10);
    expect(s.size(1, 0)).toBe(1);
    expect(s.size(1000, 12)).toBe(12);
  });

  it("tells a replica that runs batches one after the other from one that runs them side by side", () => {
    // Each batch of n takes 5 + 0.5n ms of the replica; another batch in flight is answered a varying 0-4 ms after it is sent.
    const feed = (serial: boolean) => {
      const s = new BatchSizer();
      for (let i = 0; i < 64; i++) {
        const size = 1 + (i % 8);
        const own = 5 + 0.5 * size;
        const aheadAnsweredAfter = i % 5;
        // Back to back, it starts when that one is answered; side by side, at once.
        const latency = serial ? aheadAnsweredAfter + own : own;
        s.observe(size, latency, 1000, latency - aheadAnsweredAfter);
      }
      return s;
    };
    const serial = feed(true);
    expect(serial.serial).toBe(true);
    expect(serial.model.mean(4)).toBeCloseTo(7, 6);
    const sideBySide = feed(false);
    expect(sideBySide.serial).toBe(false);
    expect(sideBySide.model.mean(4)).toBeCloseTo(7, 6);
  });
});
