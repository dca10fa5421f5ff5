import type { ImportEdge, ImportGraph, Target } from "./import-graph.js";
import { type Captures, matchPath, substitute } from "./path-pattern.js";
import { type ImportRule, NO_CYCLES, RESOLVABLE, RULES } from "./rules.js";

export interface Violation {
  /** The id of the rule broken. */
  readonly rule: string;
  /** The importing file (for a cycle, its first file). */
  readonly file: string;
  /** One line naming the file, the import as written, its target and the reason. */
  readonly message: string;
}

function targetMatches(pattern: string, target: Target): boolean {
  if (pattern.startsWith("node:")) return target.type === "builtin" && target.name === pattern;
  if (pattern.startsWith("npm:")) return target.type === "package" && matchPath(pattern.slice(4), target.name) !== undefined;
  return target.type === "file" && matchPath(pattern, target.path) !== undefined;
}

function firstMatch(patterns: readonly string[], path: string): Captures | undefined {
  for (const p of patterns) {
    const captures = matchPath(p, path);
    if (captures) return captures;
  }
  return undefined;
}

function describeTarget(target: Target): string {
  switch (target.type) {
    case "file":
    case "unresolved":
      return target.path;
    case "builtin":
      return target.name;
    case "package":
      return `package ${target.name}`;
    case "other":
      return "outside the repository";
  }
}

function where(edge: ImportEdge): string {
  return `line ${edge.line}${edge.typeOnly ? ", type-only import" : ""}`;
}

/** Violations of the per-import rules, in file order. */
export function checkRules(graph: ImportGraph, rules: readonly ImportRule[] = RULES): Violation[] {
  const out: Violation[] = [];
  for (const edge of graph.edges) {
    const { target } = edge;
    if (target.type === "unresolved") {
      out.push({
        rule: RESOLVABLE.id,
        file: edge.from,
        message: `${edge.from} imports "${edge.specifier}" (no file ${target.path}): ${RESOLVABLE.reason} (rule: ${RESOLVABLE.id}, ${where(edge)})`,
      });
      continue;
    }
    for (const rule of rules) {
      if (edge.typeOnly && rule.typeOnlyCounts === false) continue;
      const captures = firstMatch(rule.files, edge.from);
      if (!captures || firstMatch(rule.exceptFiles ?? [], edge.from)) continue;
      if (!rule.targets.some((p) => targetMatches(p, target))) continue;
      if ((rule.allowed ?? []).some((p) => targetMatches(substitute(p, captures), target))) continue;
      out.push({
        rule: rule.id,
        file: edge.from,
        message: `${edge.from} imports "${edge.specifier}" (${describeTarget(target)}): ${rule.reason} (rule: ${rule.id}, ${where(edge)})`,
      });
    }
  }
  return out;
}

export interface ImportCycle {
  /** The files of the cycle, starting with the smallest path; the last imports the first. */
  readonly files: readonly string[];
  /** edges[i] is the import of files[i] that names files[i + 1] (the last names files[0]). */
  readonly edges: readonly ImportEdge[];
}

/** At most this many cycles are listed for one strongly connected component. */
const MAX_CYCLES_PER_COMPONENT = 20;

/**
 * Every elementary import cycle among the graph's files, each once (type-only imports count).
 * Tarjan's algorithm finds the strongly connected components; within each, cycles are
 * enumerated from their smallest file through larger files only, so each is found once.
 */
export function findCycles(graph: ImportGraph): { cycles: ImportCycle[]; truncated: string[][] } {
  const files = new Set(graph.files);
  // One edge per (from, to), a runtime import preferred to a type-only one.
  const adjacency = new Map<string, Map<string, ImportEdge>>();
  for (const f of graph.files) adjacency.set(f, new Map());
  for (const edge of graph.edges) {
    if (edge.target.type !== "file" || !files.has(edge.target.path)) continue;
    const out = adjacency.get(edge.from) as Map<string, ImportEdge>;
    const seen = out.get(edge.target.path);
    if (!seen || (seen.typeOnly && !edge.typeOnly)) out.set(edge.target.path, edge);
  }
  const successors = (f: string): string[] => [...(adjacency.get(f)?.keys() ?? [])].sort();

  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of successors(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component.sort());
    }
  };
  for (const f of graph.files) if (!index.has(f)) visit(f);

  const cycles: ImportCycle[] = [];
  const truncated: string[][] = [];
  for (const component of components.sort((a, b) => (a[0] as string).localeCompare(b[0] as string))) {
    const only = component[0] as string;
    if (component.length === 1 && !adjacency.get(only)?.has(only)) continue;
    const rank = new Map(component.map((f, k) => [f, k]));
    let found = 0;
    let full = false;
    for (const start of component) {
      const startRank = rank.get(start) as number;
      const path: string[] = [start];
      const onPath = new Set(path);
      const walk = (v: string): void => {
        for (const w of successors(v)) {
          if (full) return;
          const r = rank.get(w);
          if (r === undefined || r < startRank) continue;
          if (w === start) {
            const cycleFiles = [...path];
            const edges = cycleFiles.map((f, k) => {
              const to = cycleFiles[(k + 1) % cycleFiles.length] as string;
              return adjacency.get(f)?.get(to) as ImportEdge;
            });
            cycles.push({ files: cycleFiles, edges });
            if (++found >= MAX_CYCLES_PER_COMPONENT) full = true;
          } else if (!onPath.has(w)) {
            path.push(w);
            onPath.add(w);
            walk(w);
            path.pop();
            onPath.delete(w);
          }
        }
      };
      walk(start);
      if (full) break;
    }
    if (full) truncated.push(component);
  }
  return { cycles, truncated };
}

/** Violations of the no-cycles rule: one per cycle, naming its files and the imports that close it. */
export function checkCycles(graph: ImportGraph): Violation[] {
  const { cycles, truncated } = findCycles(graph);
  const out: Violation[] = cycles.map((cycle) => {
    const chain = [...cycle.files, cycle.files[0]].join(" → ");
    const links = cycle.edges.map((e) => `${e.from} imports "${e.specifier}" (${where(e)})`).join("; ");
    return {
      rule: NO_CYCLES.id,
      file: cycle.files[0] as string,
      message: `import cycle ${chain}: ${links}: ${NO_CYCLES.reason} (rule: ${NO_CYCLES.id})`,
    };
  });
  for (const component of truncated) {
    out.push({
      rule: NO_CYCLES.id,
      file: component[0] as string,
      message: `${component.length} files import each other in a circle (${component.join(", ")}); only the first ${MAX_CYCLES_PER_COMPONENT} cycles among them are listed (rule: ${NO_CYCLES.id})`,
    });
  }
  return out;
}

/** Every violation in the graph: unresolved imports, the per-import rules, then cycles. */
export function checkArchitecture(graph: ImportGraph, rules: readonly ImportRule[] = RULES): Violation[] {
  return [...checkRules(graph, rules), ...checkCycles(graph)];
}

/** The violations as one report, grouped by rule (in the order of `rules`). */
export function formatReport(violations: readonly Violation[], rules: readonly ImportRule[] = RULES): string {
  const order = [RESOLVABLE.id, ...rules.map((r) => r.id), NO_CYCLES.id];
  const groups = new Map<string, Violation[]>();
  for (const v of violations) groups.set(v.rule, [...(groups.get(v.rule) ?? []), v]);
  const ids = [...groups.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  const lines = [`${violations.length} import${violations.length === 1 ? "" : "s"} break the layout rules (docs/architecture.md, "What may import what"):`];
  for (const id of ids) {
    const group = groups.get(id) as Violation[];
    lines.push("", `${id} (${group.length}):`, ...group.map((v) => `  ${v.message}`));
  }
  return lines.join("\n");
}
