/** The help texts, rendered from the command table. */
import { COMMANDS, GLOBAL_OPTIONS } from "./command-table.js";
import type { CommandDef, OptionDef } from "./invocation.js";

/** `clipper --help`: every command and the global options. */
export function overviewHelp(): string {
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(20)} ${c.summary}`);
  return [
    "Usage: clipper <command> [options]",
    "",
    "Commands:",
    ...lines,
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Run `clipper <command> --help` for a command's options and examples.",
    "",
  ].join("\n");
}

/** `clipper <command> --help`: its synopsis, options and examples. */
export function commandHelp(def: CommandDef): string {
  const own = optionLines(def.options);
  return [
    `Usage: clipper ${def.name}${def.synopsis === "" ? "" : ` ${def.synopsis}`}`,
    "",
    `${def.summary[0]?.toUpperCase() ?? ""}${def.summary.slice(1)}.`,
    ...(own.length === 0 ? [] : ["", "Options:", ...own]),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Examples:",
    ...def.examples.map((e) => `  ${e}`),
    "",
  ].join("\n");
}

function optionLines(options: Record<string, OptionDef>): string[] {
  return Object.entries(options).map(([name, o]) => `  ${`--${name}${o.value === undefined ? "" : ` ${o.value}`}`.padEnd(30)} ${o.help}`);
}
