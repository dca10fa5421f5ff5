/**
 * Path patterns for the rules in rules.ts, matched against repository paths with `/`:
 *
 *   `*`            any characters within one path segment
 *   `**`           any number of segments (`a/**` is everything under a/, `a/** /b.ts` also a/b.ts)
 *   `{svc}`        one segment, captured as "svc" (a rule's allowed targets can then say `services/{svc}/**`)
 *   `{svc=a|b}`    one segment that is a or b, captured as "svc"
 *   `node:x`       the node builtin x (`node:x` and `x` alike); `npm:name` the package name
 *
 * Path patterns match only repository files, `node:` and `npm:` patterns only builtins and packages.
 */

export type Captures = Readonly<Record<string, string>>;

interface Compiled {
  readonly regex: RegExp;
  readonly names: readonly string[];
}

const cache = new Map<string, Compiled>();

function escapeRegex(s: string): string {
  return s.replace(/[.+^$()|[\]\\?]/g, "\\$&");
}

function compile(pattern: string): Compiled {
  const hit = cache.get(pattern);
  if (hit) return hit;
  const names: string[] = [];
  let re = "";
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith("**/", i)) {
      re += "(?:[^/]+/)*";
      i += 3;
    } else if (pattern.startsWith("/**", i) && i + 3 === pattern.length) {
      re += "/.+";
      i += 3;
    } else if (pattern.startsWith("**", i)) {
      re += ".*";
      i += 2;
    } else if (pattern[i] === "*") {
      re += "[^/]*";
      i++;
    } else if (pattern[i] === "{") {
      const end = pattern.indexOf("}", i);
      if (end === -1) throw new Error(`unclosed { in pattern ${pattern}`);
      const [name, alternatives] = pattern.slice(i + 1, end).split("=", 2) as [string, string | undefined];
      names.push(name);
      re += alternatives === undefined ? "([^/]+)" : `(${alternatives.split("|").map(escapeRegex).join("|")})`;
      i = end + 1;
    } else {
      re += escapeRegex(pattern[i] as string);
      i++;
    }
  }
  const compiled = { regex: new RegExp(`^${re}$`), names };
  cache.set(pattern, compiled);
  return compiled;
}

/** The captures when `path` matches `pattern`, otherwise undefined. */
export function matchPath(pattern: string, path: string): Captures | undefined {
  const { regex, names } = compile(pattern);
  const m = regex.exec(path);
  if (!m) return undefined;
  const captures: Record<string, string> = {};
  names.forEach((name, k) => {
    captures[name] = m[k + 1] as string;
  });
  return captures;
}

/** Fills `{name}` in a pattern with the captures of the importing file's match. */
export function substitute(pattern: string, captures: Captures): string {
  return pattern.replace(/\{([^}=]+)\}/g, (whole, name: string) => captures[name] ?? whole);
}
