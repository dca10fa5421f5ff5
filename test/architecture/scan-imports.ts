/**
 * Finds the module specifiers a TypeScript or JavaScript file depends on, without a parser
 * process: a lexer that knows comments, strings, template literals (with `${}` expressions,
 * nested) and regular expression literals, then a few token patterns for the forms that name
 * a module:
 *
 *   import x, { y, type z } from "m"      import "m"          import type { T } from "m"
 *   export { a } from "m"                 export * from "m"   export type { T } from "m"
 *   import("m")   typeof import("m")      require("m")        import x = require("m")
 *
 * Text that only looks like an import (in a comment, a string, a template literal or a regular
 * expression) is never a token, so it is never an import. `import(variable)` names no module and
 * is skipped. `import.meta`, `x.import(...)` and `{ import: ... }` are not imports.
 *
 * test/architecture/lexer-crosscheck.integration.test.ts checks this lexer against esbuild's
 * parser over every file of the repository.
 */

/** How a file names a module. */
export type ImportKind = "import" | "export-from" | "dynamic-import" | "require";

export interface FoundImport {
  /** The specifier as written, between the quotes. */
  readonly specifier: string;
  readonly kind: ImportKind;
  /** `import type`, `export type ... from`, `typeof import(...)`: gone after compilation. */
  readonly typeOnly: boolean;
  /** 1-based line of the specifier. */
  readonly line: number;
}

type TokenType = "name" | "string" | "punct" | "number" | "template" | "regex";

interface Token {
  readonly type: TokenType;
  readonly value: string;
  readonly line: number;
}

/** Keywords after which a `/` starts a regular expression, not a division. */
const EXPRESSION_KEYWORDS = new Set(["return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await"]);

function regexAllowedAfter(prev: Token | undefined): boolean {
  if (prev === undefined) return true;
  switch (prev.type) {
    case "name":
      return EXPRESSION_KEYWORDS.has(prev.value);
    case "punct":
      return !(prev.value === ")" || prev.value === "]" || prev.value === "}" || prev.value === "++" || prev.value === "--");
    default:
      return false;
  }
}

function isNameStart(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c === "$" || c > "\u007f";
}

function isNamePart(c: string): boolean {
  return isNameStart(c) || (c >= "0" && c <= "9");
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** Splits a source into tokens; comments and whitespace are dropped. */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const n = source.length;
  let i = 0;
  let line = 1;
  // One entry per open `{`: "brace" for a block or object, "template" for a `${` of a template literal.
  const braces: ("brace" | "template")[] = [];

  if (source.startsWith("#!")) {
    while (i < n && source[i] !== "\n") i++;
  }

  /**
   * Reads template literal text from i (just past "`", or past the "}" closing a `${`). A
   * template without substitutions is a string token (`import(\`m\`)` names m).
   */
  const readTemplate = (fresh: boolean): void => {
    const startLine = line;
    const start = i;
    while (i < n) {
      const c = source[i];
      if (c === "\\") {
        if (source[i + 1] === "\n") line++;
        i += 2;
      } else if (c === "`") {
        i++;
        if (fresh) tokens.push({ type: "string", value: source.slice(start, i - 1), line: startLine });
        else tokens.push({ type: "template", value: "`", line: startLine });
        return;
      } else if (c === "$" && source[i + 1] === "{") {
        i += 2;
        braces.push("template");
        tokens.push({ type: "punct", value: "${", line });
        return;
      } else {
        if (c === "\n") line++;
        i++;
      }
    }
    tokens.push({ type: "template", value: "`", line: startLine });
  };

  while (i < n) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === "\n") {
      line++;
      i++;
    } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v" || c === "\u00a0" || c === "\ufeff") {
      i++;
    } else if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? n : end + 2;
      for (let k = i; k < stop; k++) if (source[k] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      const startLine = line;
      let value = "";
      i++;
      while (i < n && source[i] !== c) {
        const d = source[i] as string;
        if (d === "\n") break; // unterminated: end the string at the line, like the language
        if (d === "\\") {
          const e = source[i + 1];
          if (e === "\n") line++;
          else if (e !== undefined) value += e;
          i += 2;
        } else {
          value += d;
          i++;
        }
      }
      i++; // the closing quote
      tokens.push({ type: "string", value, line: startLine });
    } else if (c === "`") {
      i++;
      readTemplate(true);
    } else if (isNameStart(c)) {
      const start = i;
      while (i < n && isNamePart(source[i] as string)) i++;
      tokens.push({ type: "name", value: source.slice(start, i), line });
    } else if (isDigit(c) || (c === "." && isDigit(next))) {
      const start = i;
      while (i < n && (isNamePart(source[i] as string) || source[i] === ".")) i++;
      tokens.push({ type: "number", value: source.slice(start, i), line });
    } else if (c === "/" && regexAllowedAfter(tokens[tokens.length - 1])) {
      // A regular expression literal ends on its line; if it does not, this `/` was a division.
      let k = i + 1;
      let inClass = false;
      let closed = false;
      while (k < n && source[k] !== "\n") {
        const d = source[k];
        if (d === "/" && !inClass) {
          closed = true;
          break;
        }
        if (d === "[") inClass = true;
        else if (d === "]") inClass = false;
        k += d === "\\" ? 2 : 1;
      }
      if (closed) {
        k++;
        while (k < n && isNamePart(source[k] as string)) k++; // flags
        tokens.push({ type: "regex", value: source.slice(i, k), line });
        i = k;
      } else {
        tokens.push({ type: "punct", value: "/", line });
        i++;
      }
    } else if ((c === "+" || c === "-") && next === c) {
      tokens.push({ type: "punct", value: c + c, line });
      i += 2;
    } else if (c === "?" && next === "." && !isDigit(source[i + 2])) {
      tokens.push({ type: "punct", value: "?.", line });
      i += 2;
    } else if (c === "{") {
      braces.push("brace");
      tokens.push({ type: "punct", value: c, line });
      i++;
    } else if (c === "}") {
      i++;
      if (braces.pop() === "template") readTemplate(false);
      else tokens.push({ type: "punct", value: c, line });
    } else {
      tokens.push({ type: "punct", value: c, line });
      i++;
    }
  }
  return tokens;
}

const isName = (t: Token | undefined, value?: string): boolean => t !== undefined && t.type === "name" && (value === undefined || t.value === value);
const isPunct = (t: Token | undefined, value: string): boolean => t !== undefined && t.type === "punct" && t.value === value;
const isString = (t: Token | undefined): t is Token => t !== undefined && t.type === "string";

/**
 * From tokens[j], the clause of an import (`x`, `{ a, type b as c }`, `* as ns`, `x, { y }`),
 * up to `from "m"`. Returns the index of the specifier's string token, or -1 when this is not
 * an import clause.
 */
function importClauseEnd(tokens: readonly Token[], j: number): number {
  let depth = 0;
  for (let k = j; k < tokens.length; k++) {
    const t = tokens[k] as Token;
    if (depth === 0 && k > j && isName(t, "from") && isString(tokens[k + 1])) return k + 1;
    if (isPunct(t, "{")) depth++;
    else if (isPunct(t, "}")) {
      depth--;
      if (depth < 0) return -1;
    } else if (t.type === "name" || isPunct(t, ",") || isPunct(t, "*") || (t.type === "string" && depth > 0)) {
      // part of a clause: names, `as`, `type`, `default`, `"arbitrary name" as x`
    } else return -1;
  }
  return -1;
}

/** Every module specifier the source names, in order of appearance. */
export function scanImports(source: string): FoundImport[] {
  const tokens = tokenize(source);
  const found: FoundImport[] = [];
  const taken = new Set<Token>(); // `import x = require("m")` is one import, not also a require
  const add = (str: Token, kind: ImportKind, typeOnly: boolean): void => {
    if (taken.has(str)) return;
    taken.add(str);
    found.push({ specifier: str.value, kind, typeOnly, line: str.line });
  };

  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.type !== "name") continue;
    const prev = tokens[i - 1];
    if (isPunct(prev, ".") || isPunct(prev, "?.") || isPunct(prev, "#")) continue; // a property, not a keyword
    const t1 = tokens[i + 1];
    const t2 = tokens[i + 2];
    const t3 = tokens[i + 3];

    if (t.value === "import") {
      if (isPunct(t1, "(")) {
        if (isString(t2) && (isPunct(t3, ")") || isPunct(t3, ","))) add(t2, "dynamic-import", isName(prev, "typeof"));
        continue;
      }
      if (isString(t1)) {
        add(t1, "import", false); // import "m"
        continue;
      }
      let j = i + 1;
      let typeOnly = false;
      // `import type X from`, `import type { X } from`, but `import type from "m"` and
      // `import type, { x } from "m"` import a default binding named `type`.
      if (isName(t1, "type") && !(isName(t2, "from") && isString(t3)) && !isPunct(t2, ",") && !isPunct(t2, "=")) {
        typeOnly = true;
        j++;
      }
      // import x = require("m")
      const a = tokens[j];
      if (isName(a) && isPunct(tokens[j + 1], "=")) {
        const s = tokens[j + 4];
        if (isName(tokens[j + 2], "require") && isPunct(tokens[j + 3], "(") && isString(s) && isPunct(tokens[j + 5], ")")) {
          add(s, "import", typeOnly);
        }
        continue;
      }
      const end = importClauseEnd(tokens, j);
      if (end !== -1) add(tokens[end] as Token, "import", typeOnly);
    } else if (t.value === "export") {
      let j = i + 1;
      let typeOnly = false;
      if (isName(t1, "type") && (isPunct(t2, "{") || isPunct(t2, "*"))) {
        typeOnly = true;
        j++;
      }
      const a = tokens[j];
      if (isPunct(a, "*")) {
        // export * from "m"; export * as ns from "m"
        let k = j + 1;
        if (isName(tokens[k], "as") && (isName(tokens[k + 1]) || isString(tokens[k + 1]))) k += 2;
        const s = tokens[k + 1];
        if (isName(tokens[k], "from") && isString(s)) add(s, "export-from", typeOnly);
      } else if (isPunct(a, "{")) {
        let k = j + 1;
        while (k < tokens.length && (isName(tokens[k]) || isString(tokens[k]) || isPunct(tokens[k], ","))) k++;
        const s = tokens[k + 2];
        if (isPunct(tokens[k], "}") && isName(tokens[k + 1], "from") && isString(s)) add(s, "export-from", typeOnly);
      }
    } else if (t.value === "require") {
      if (isName(prev, "function")) continue;
      if (isPunct(t1, "(") && isString(t2) && isPunct(t3, ")")) add(t2, "require", false);
    }
  }
  return found;
}
