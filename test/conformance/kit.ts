// The conformance kit: starts a model container from a command line and checks it over the wire
// against clipper.model.v1.ModelService and grpc.health.v1. Prints a table, one row per check, and
// exits 1 when a check fails (2 for a usage error). test/conformance/README.md describes it.
//
//   node --import tsx test/conformance/kit.ts [options] -- <container command...>
//
// The container runs the conformance model (test/conformance/models/) of its runtime.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseType } from "./contract.js";
import { summary, tableHeader, tableRow } from "./report.js";
import { CHECK_LIST, DEFAULT_SETTINGS, runConformance } from "./run.js";

const USAGE = `usage: node --import tsx test/conformance/kit.ts [options] -- <container command...>

Starts the command once per input type, as the container-manager starts a replica (CLIPPER_MODEL_PORT,
CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE, CLIPPER_METRICS_PORT; PATH, HOME and LANG
of this process), and checks it. The command must serve the conformance model (test/conformance/README.md).

options:
  --input-types LIST      comma-separated, the first also gets the checks run once (default doubles,floats,ints,strings,bytes)
  --name NAME             CLIPPER_MODEL_NAME (default ${DEFAULT_SETTINGS.name})
  --version VERSION       CLIPPER_MODEL_VERSION (default ${DEFAULT_SETTINGS.version})
  --env KEY=VALUE         more environment for the container (repeatable)
  --inherit-env           give the container this process's whole environment
  --cwd DIR               the container's working directory (default: this one)
  --load-ms MS            how long the model takes to load in the readiness check (default ${DEFAULT_SETTINGS.loadMs})
  --max-message-bytes N   the message size the container accepts; the oversized check sends 1 MiB more (default ${DEFAULT_SETTINGS.maxMessageBytes})
  --max-batch N           the "maximum" batch for a container that declares no max_batch_size (default ${DEFAULT_SETTINGS.maxBatch})
  --start-timeout-ms MS   how long a container may take to be SERVING (default ${DEFAULT_SETTINGS.startTimeoutMs})
  --stop-grace-ms MS      how long after SIGTERM it may take to exit, the container-manager's grace (default ${DEFAULT_SETTINGS.stopGraceMs})
  --protocol P            grpc (default), or connect: the Connect protocol on HTTP/1.1, unary calls only (R containers);
                          the checks that need PredictStream or Watch are skipped
  --no-nul-strings        sample strings hold no NUL character (for runtimes whose strings cannot: R)
  --only LIST, --skip LIST  check ids to run or leave out (--list shows them)
  --require LIST          check ids that must pass: a skip of one fails (--require metrics for a runtime that serves them)
  --json FILE             also write the results as JSON
  --list                  list the checks and exit`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function integer(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) fail(`${flag} must be a non-negative integer, got "${raw}"`);
  return Number(raw);
}

const list = (raw: string | undefined) =>
  raw
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      allowPositionals: true,
      options: {
        "input-types": { type: "string" },
        "input-type": { type: "string" },
        name: { type: "string" },
        version: { type: "string" },
        env: { type: "string", multiple: true },
        "inherit-env": { type: "boolean" },
        cwd: { type: "string" },
        "load-ms": { type: "string" },
        "max-message-bytes": { type: "string" },
        "max-batch": { type: "string" },
        "start-timeout-ms": { type: "string" },
        "stop-grace-ms": { type: "string" },
        protocol: { type: "string" },
        "no-nul-strings": { type: "boolean" },
        only: { type: "string" },
        skip: { type: "string" },
        require: { type: "string" },
        json: { type: "string" },
        list: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    parsed = parse();
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.list) {
    for (const c of CHECK_LIST) process.stdout.write(`${c.id.padEnd(20)} ${c.once ? "once " : "each "} ${c.title}\n`);
    return;
  }
  if (positionals.length === 0) fail("no container command: give it after --");
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const at = pair.indexOf("=");
    if (at <= 0) fail(`--env wants KEY=VALUE, got "${pair}"`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  let inputTypes: ReturnType<typeof parseType>[] | undefined;
  try {
    inputTypes = list(values["input-types"] ?? values["input-type"])?.map(parseType);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  const known = new Set(CHECK_LIST.map((c) => c.id));
  const only = list(values.only);
  const skip = list(values.skip);
  const required = list(values.require);
  for (const id of [...(only ?? []), ...(skip ?? []), ...(required ?? [])]) if (!known.has(id)) fail(`unknown check "${id}" (--list shows them)`);
  const cwd = values.cwd !== undefined ? path.resolve(values.cwd) : process.cwd();
  const protocol = values.protocol ?? "grpc";
  if (protocol !== "grpc" && protocol !== "connect") fail(`--protocol is grpc or connect, got "${protocol}"`);

  process.stdout.write(`conformance kit: ${positionals.join(" ")}\n(in ${cwd})\n\n${tableHeader()}\n`);
  const results = await runConformance({
    container: { command: positionals, cwd, env, inheritEnv: values["inherit-env"] ?? false },
    protocol,
    ...(values["no-nul-strings"] ? { nulInStrings: false } : {}),
    ...(inputTypes !== undefined ? { inputTypes } : {}),
    ...(only !== undefined ? { only } : {}),
    ...(skip !== undefined ? { skip } : {}),
    ...(required !== undefined ? { require: required } : {}),
    ...(values.name !== undefined ? { name: values.name } : {}),
    ...(values.version !== undefined ? { version: values.version } : {}),
    ...definedNumbers({
      loadMs: integer(values["load-ms"], "--load-ms"),
      maxMessageBytes: integer(values["max-message-bytes"], "--max-message-bytes"),
      maxBatch: integer(values["max-batch"], "--max-batch"),
      startTimeoutMs: integer(values["start-timeout-ms"], "--start-timeout-ms"),
      stopGraceMs: integer(values["stop-grace-ms"], "--stop-grace-ms"),
    }),
    onResult: (r) => process.stdout.write(`${tableRow(r)}\n`),
  });
  process.stdout.write(`\n${summary(results)}\n`);
  if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify({ command: positionals, results }, null, 2)}\n`);
  process.exitCode = results.some((r) => r.outcome === "fail") || results.length === 0 ? 1 : 0;
}

function definedNumbers<T extends Record<string, number | undefined>>(values: T): { [K in keyof T]?: number } {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: number };
}

main().catch((err: unknown) => {
  process.stderr.write(`conformance kit: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
