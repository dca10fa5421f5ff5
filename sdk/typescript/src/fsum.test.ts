import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fsum } from "./fsum.js";

describe("fsum", () => {
  it("rounds correctly where naive summation does not", () => {
    expect(fsum([1.1, 2.2, 3.3])).toBe(6.6);
    expect(fsum([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])).toBe(1);
    expect(fsum([1e100, 1, -1e100])).toBe(1);
    expect(fsum([])).toBe(0);
    expect(fsum([Number.POSITIVE_INFINITY, 1])).toBe(Number.POSITIVE_INFINITY);
    expect(fsum([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])).toBeNaN();
  });

  it("is exact for integers and independent of order", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 50 }), (xs) => {
        expect(fsum(xs)).toBe(xs.reduce((a, b) => a + b, 0));
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { maxLength: 30 }), (xs) => {
        expect(fsum([...xs].reverse())).toBe(fsum(xs));
      }),
    );
  });
});
