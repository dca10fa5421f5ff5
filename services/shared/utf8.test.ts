import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeUtf8KeepingErrors, wellFormed } from "./utf8.js";

describe("decodeUtf8KeepingErrors", () => {
  it("decodes valid UTF-8 as TextDecoder does, and anything else to text that is not well-formed", () => {
    const strict = new TextDecoder("utf-8", { fatal: true });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.string({ unit: "grapheme" }).map((s) => new TextEncoder().encode(s)),
        ),
        (bytes) => {
          const text = decodeUtf8KeepingErrors(bytes);
          if (isUtf8(bytes)) {
            expect(text).toBe(strict.decode(bytes));
            expect(wellFormed(text)).toBe(true);
          } else {
            expect(wellFormed(text)).toBe(false);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("keeps the valid text around a broken byte, and refuses overlong forms and encoded surrogates", () => {
    expect(decodeUtf8KeepingErrors(Buffer.from([0x61, 0xff, 0x62]))).toBe("a\uDFFF\uDFFFb");
    expect(wellFormed(decodeUtf8KeepingErrors(Buffer.from([0xc0, 0xaf])))).toBe(false);
    expect(wellFormed(decodeUtf8KeepingErrors(Buffer.from([0xed, 0xa0, 0x80])))).toBe(false);
    expect(decodeUtf8KeepingErrors(Buffer.from("h\u00e9\u{1F600}\uFFFD", "utf8"))).toBe("h\u00e9\u{1F600}\uFFFD");
  });
});
