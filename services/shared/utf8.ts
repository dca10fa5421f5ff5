import { isUtf8 } from "node:buffer";

/**
 * What decodeUtf8KeepingErrors puts in place of each byte that is not part of
 * valid UTF-8: two lone low surrogates, so the text is not well-formed Unicode
 * (wellFormed() is false) however it is sliced or joined: even after a JSON
 * escape of a high surrogate, one of them stays alone.
 */
const INVALID_BYTE = "\uDFFF\uDFFF";

/**
 * Decodes UTF-8 as TextDecoder does, except that invalid bytes become lone
 * surrogates instead of U+FFFD: U+FFFD is a character a client may send, so
 * after the usual decoding nobody can tell its bytes were broken; a lone
 * surrogate can come from nothing valid, so a later check (wellFormed) can
 * refuse exactly the strings that held invalid bytes, and name them.
 */
export function decodeUtf8KeepingErrors(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return buf.toString("utf8");
  let out = "";
  let start = 0;
  let i = 0;
  while (i < buf.length) {
    const length = sequenceLength(buf, i);
    if (length > 0) {
      i += length;
      continue;
    }
    out += buf.toString("utf8", start, i) + INVALID_BYTE;
    i++;
    start = i;
  }
  return out + buf.toString("utf8", start, buf.length);
}

/** Whether a string is well-formed Unicode (no lone surrogate), so that it has a UTF-8 encoding. */
export function wellFormed(text: string): boolean {
  // String.prototype.isWellFormed is in Node 20 (V8 11.3) but not yet in TypeScript's ES2023 lib.
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** The length of the valid UTF-8 sequence starting at `i` (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF), or 0. */
function sequenceLength(buf: Buffer, i: number): number {
  const b0 = buf[i] as number;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const b = buf[i + k];
    return b !== undefined && b >= lo && b <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
