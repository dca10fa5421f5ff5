import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LineSplitter, LogBuffer, RotatingLogFile } from "./log-buffer.js";

describe("LogBuffer", () => {
  it("keeps the last lines, oldest first, with timestamps", () => {
    let t = 0;
    const buf = new LogBuffer(3, () => ++t);
    for (const s of ["a", "b", "c", "d", "e"]) buf.push("stdout", s);
    expect(buf.tail(10).map((l) => l.text)).toEqual(["c", "d", "e"]);
    expect(buf.tail(2)).toEqual([
      { timeMs: 4, stream: "stdout", text: "d" },
      { timeMs: 5, stream: "stdout", text: "e" },
    ]);
    expect(buf.tail(0)).toEqual([]);
  });
});

describe("LineSplitter", () => {
  it("splits chunks into lines and cuts overlong ones", () => {
    const lines: string[] = [];
    const split = new LineSplitter(4, (l) => lines.push(l));
    split.write("ab");
    split.write("c\r\nde\n\nabcdefghij");
    split.end();
    expect(lines).toEqual(["abc", "de", "", "abcd", "efgh", "ij"]);
  });
});

describe("RotatingLogFile", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-logs-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("rotates when the file passes its size limit", async () => {
    const file = new RotatingLogFile(path.join(dir, "m-1-r.log"), 25);
    for (const s of ["0123456789", "abcdefghij", "klmnopqrst"]) file.write(s);
    await file.close();
    expect(fs.readFileSync(path.join(dir, "m-1-r.log"), "utf8")).toBe("klmnopqrst\n");
    expect(fs.readFileSync(path.join(dir, "m-1-r.log.1"), "utf8")).toBe("0123456789\nabcdefghij\n");
  });
});
