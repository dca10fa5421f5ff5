/** A command line that cannot be split, e.g. an unterminated quote. */
export class ShellWordsError extends Error {
  override name = "ShellWordsError";
}

/**
 * Splits a command line into argv the way a POSIX shell would for quoting
 * alone: whitespace separates words; single quotes keep everything literally;
 * double quotes keep whitespace and honour backslash before `"`, `\`, `$` and
 * `` ` ``; a backslash outside quotes escapes the next character. No expansion
 * of variables, globs or substitutions is done.
 */
export function splitShellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  // A word exists once any character or quote pair was seen, so `''` yields an empty argument.
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const ch = line[i] as string;
    if (ch === " " || ch === "\t" || ch === "\n") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError(`unterminated single quote at position ${i} in ${JSON.stringify(line)}`);
      word += line.slice(i + 1, end);
      i = end + 1;
    } else if (ch === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new ShellWordsError(`unterminated double quote in ${JSON.stringify(line)}`);
        const c = line[i] as string;
        if (c === '"') break;
        const next = line[i + 1];
        if (c === "\\" && next !== undefined && '"\\$`'.includes(next)) {
          word += next;
          i += 2;
        } else if (c === "\\" && next === "\n") {
          i += 2;
        } else {
          word += c;
          i++;
        }
      }
      i++;
    } else if (ch === "\\") {
      const next = line[i + 1];
      if (next === undefined) throw new ShellWordsError(`trailing backslash in ${JSON.stringify(line)}`);
      if (next !== "\n") word += next;
      i += 2;
    } else {
      word += ch;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
