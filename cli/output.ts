import { DeployStage } from "../gen/clipper/v1/container_manager_service_pb.js";
import { type ModelRuntime, ReplicaState } from "../gen/clipper/v1/resources_pb.js";

/** Where a command writes; process.stdout and process.stderr satisfy it, and so does a test's buffer. */
export interface Output {
  write(text: string): unknown;
  /** True when the output is a terminal (progress is then redrawn in place). */
  readonly isTTY?: boolean;
}

/** Left-aligned columns separated by two spaces; the header row first. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[header, ...rows].map(line).join("\n")}\n`;
}

/** Indents every non-empty line by two spaces (a table under a heading). */
export function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "  ");
}

export function stageName(stage: DeployStage): string {
  switch (stage) {
    case DeployStage.REGISTERED:
      return "registered";
    case DeployStage.STARTING:
      return "starting";
    case DeployStage.READY:
      return "ready";
    default:
      return "pending";
  }
}

export function replicaStateName(state: ReplicaState): string {
  switch (state) {
    case ReplicaState.STARTING:
      return "starting";
    case ReplicaState.READY:
      return "ready";
    case ReplicaState.UNHEALTHY:
      return "unhealthy";
    case ReplicaState.FAILED:
      return "failed";
    case ReplicaState.STOPPING:
      return "stopping";
    default:
      return "unknown";
  }
}

/** How a model version runs, in one table cell. */
export function describeRuntime(runtime: ModelRuntime | undefined): string {
  switch (runtime?.kind.case) {
    case "pythonClosure":
      return `python closure ${runtime.kind.value.artifactDigest.slice(0, 12)}`;
    case "command":
      return `command ${runtime.kind.value.argv.map(quoteWord).join(" ")}`;
    case "nodeModule":
      return `node ${runtime.kind.value.modulePath}`;
    case "javaClass":
      return `java ${runtime.kind.value.className} (jar ${runtime.kind.value.jarDigest.slice(0, 12)})`;
    case "rFunction":
      return `r ${runtime.kind.value.format} ${runtime.kind.value.artifactDigest.slice(0, 12)}`;
    default:
      return "-";
  }
}

/** Quotes a word for display so that it splits back the same way. */
function quoteWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
