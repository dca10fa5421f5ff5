/** Argument parsing: argv to a command of the table with its flags (node:util parseArgs) and arguments, or a request for help. */
import { parseArgs } from "node:util";
import { COMMAND_GROUPS, COMMANDS, GLOBAL_OPTIONS } from "./command-table.js";
import { type CommandDef, type FlagValues, type OptionDef, UsageError } from "./invocation.js";

export type CommandLine =
  | { kind: "overview" }
  | { kind: "help"; command: CommandDef }
  | { kind: "run"; command: CommandDef; values: FlagValues; positionals: string[] };

/** Throws a UsageError for a command line that does not fit the table. */
export function parseCommandLine(argv: string[]): CommandLine {
  const found = findCommand(moveLeadingGlobalOptions(argv));
  if (found === "help") return { kind: "overview" };
  const { def, rest } = found;
  const { values, positionals } = parseFlags(def, rest);
  if (values.help === true) return { kind: "help", command: def };
  checkPositionals(def, positionals);
  return { kind: "run", command: def, values, positionals };
}

/** `clipper --data-dir D status` is `clipper status --data-dir D`. */
function moveLeadingGlobalOptions(argv: string[]): string[] {
  const leading: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    const name = arg.startsWith("--") ? (arg.slice(2).split("=")[0] ?? "") : "";
    const option = name === "help" ? undefined : GLOBAL_OPTIONS[name];
    if (option === undefined) break;
    leading.push(arg);
    if (option.type === "string" && !arg.includes("=") && i + 1 < argv.length) leading.push(argv[++i] as string);
  }
  return [...argv.slice(i), ...leading];
}

function findCommand(argv: string[]): "help" | { def: CommandDef; rest: string[] } {
  const [first, second, ...others] = argv;
  if (first === undefined) throw new UsageError("no command given");
  if (first === "--help" || first === "-h" || first === "help") {
    if (second === undefined) return "help";
    // `clipper help model deploy` is `clipper model deploy --help`.
    return findCommand([second, ...others.filter((a) => !a.startsWith("-")).slice(0, 1), "--help"]);
  }
  if (first.startsWith("-")) throw new UsageError(`expected a command before ${first}`);
  if (first in COMMAND_GROUPS) {
    if (second === "--help" || second === "-h") return { def: groupCommand(first), rest: ["--help"] };
    if (second === undefined || second.startsWith("-")) throw new UsageError(`\`clipper ${first}\` needs a subcommand`, groupCommand(first));
    const def = COMMANDS.find((c) => c.name === `${first} ${second}`);
    if (def === undefined) throw new UsageError(`unknown command \`clipper ${first} ${second}\`; \`clipper ${first}\` has ${COMMAND_GROUPS[first]}`);
    return { def, rest: others };
  }
  const def = COMMANDS.find((c) => c.name === first);
  if (def === undefined) throw new UsageError(`unknown command \`${first}\``);
  return { def, rest: argv.slice(1) };
}

/** A pseudo-command whose help lists a group's subcommands. */
function groupCommand(group: string): CommandDef {
  const members = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return {
    name: group,
    summary: COMMAND_GROUPS[group] ?? group,
    synopsis: `<${members.map((c) => c.name.slice(group.length + 1)).join("|")}> ...`,
    positionals: { required: [] },
    options: {},
    examples: members.flatMap((c) => c.examples.slice(0, 1)),
    run: () => Promise.resolve(0),
  };
}

function parseFlags(def: CommandDef, args: string[]): { values: FlagValues; positionals: string[] } {
  const options = { ...def.options, ...GLOBAL_OPTIONS };
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(args, options),
      options: Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(name === "help" ? { short: "h" } : {}) }])),
      allowPositionals: true,
      strict: true,
    });
    return { values: values as FlagValues, positionals };
  } catch (err) {
    // parseArgs's messages name the flag; its advice about `--` and dashes is kept.
    throw new UsageError((err as Error).message.split("\n")[0] ?? String(err), def);
  }
}

/**
 * parseArgs refuses `--default-output -1.0` as ambiguous; a string flag
 * followed by a negative number takes it as its value.
 */
function joinNegativeValues(args: string[], options: Record<string, OptionDef>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const next = args[i + 1];
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === "string" && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function checkPositionals(def: CommandDef, positionals: string[]): void {
  const { required, optional = [] } = def.positionals;
  if (positionals.length < required.length) {
    throw new UsageError(`missing ${required.slice(positionals.length).join(" ")}`, def);
  }
  if (positionals.length > required.length + optional.length) {
    throw new UsageError(`unexpected argument "${positionals[required.length + optional.length]}"`, def);
  }
}
