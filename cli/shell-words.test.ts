import { describe, expect, it } from "vitest";
import { ShellWordsError, splitShellWords } from "./shell-words.js";

describe("splitShellWords", () => {
  it("splits on runs of whitespace", () => {
    expect(splitShellWords("  python3  model.py\t--port 1 \n")).toEqual(["python3", "model.py", "--port", "1"]);
  });

  it("keeps single-quoted text literally", () => {
    expect(splitShellWords(`echo 'a b  "c" \\n $X'`)).toEqual(["echo", 'a b  "c" \\n $X']);
  });

  it("honours backslash escapes inside double quotes only before special characters", () => {
    expect(splitShellWords(`say "a \\"b\\" \\\\ \\x"`)).toEqual(["say", 'a "b" \\ \\x']);
  });

  it("joins adjacent quoted and unquoted parts into one word", () => {
    expect(splitShellWords(`--name='my model'"_v"2`)).toEqual(["--name=my model_v2"]);
  });

  it("keeps empty quoted arguments", () => {
    expect(splitShellWords(`cmd '' ""`)).toEqual(["cmd", "", ""]);
  });

  it("escapes a character with a backslash outside quotes", () => {
    expect(splitShellWords("a\\ b c\\'d")).toEqual(["a b", "c'd"]);
  });

  it("returns no words for an empty or blank line", () => {
    expect(splitShellWords("")).toEqual([]);
    expect(splitShellWords("   ")).toEqual([]);
  });

  it("rejects unterminated quotes and a trailing backslash with a clear message", () => {
    expect(() => splitShellWords("echo 'abc")).toThrow(ShellWordsError);
    expect(() => splitShellWords('echo "abc')).toThrow(/unterminated double quote/);
    expect(() => splitShellWords("echo abc\\")).toThrow(/trailing backslash/);
  });
});
