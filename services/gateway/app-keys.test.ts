import { describe, expect, it } from "vitest";
import { generateToken, hashToken } from "../shared/index.js";
import { AppKeys, presentedKey } from "./app-keys.js";

const line = (app: string, key: string) => `${app} sha256:${hashToken(key).toString("hex")} label\n`;

describe("AppKeys", () => {
  const digitsKey = generateToken();
  const allKey = generateToken();

  it("opens a named application only with one of its keys; others stay open without a * line", () => {
    const keys = AppKeys.parse(line("digits", digitsKey), "keys");
    expect(() => keys.check("digits", digitsKey)).not.toThrow();
    expect(() => keys.check("digits", undefined)).toThrow('application "digits" needs a key');
    expect(() => keys.check("digits", allKey)).toThrow('the key is not valid for application "digits"');
    expect(() => keys.check("other", undefined)).not.toThrow();
  });

  it("with a * line, every application needs a key and the * key opens all", () => {
    const keys = AppKeys.parse(line("digits", digitsKey) + line("*", allKey), "keys");
    expect(() => keys.check("other", undefined)).toThrow('application "other" needs a key');
    expect(() => keys.check("other", allKey)).not.toThrow();
    expect(() => keys.check("digits", allKey)).not.toThrow();
    expect(() => keys.check("other", digitsKey)).toThrow("not valid");
  });

  it("refuses malformed lines naming file and line", () => {
    expect(() => AppKeys.parse("# c\ndigits md5:abc\n", "keys")).toThrow('keys:2: expected "<application|*> sha256:<64 hex digits> [label]"');
  });

  it("reads X-Clipper-Key first, then a bearer token", () => {
    expect(presentedKey(new Headers({ "x-clipper-key": "a", authorization: "Bearer b" }))).toBe("a");
    expect(presentedKey(new Headers({ authorization: "Bearer b" }))).toBe("b");
    expect(presentedKey(new Headers())).toBeUndefined();
  });
});
