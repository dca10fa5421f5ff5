/**
 * The `clipper` command line: the command table, argument parsing (node:util
 * parseArgs), help, and the mapping of errors to exit statuses
 * (0 ok, 1 failure, 2 usage).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { InputType } from "../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../gen/clipper/v1/management_service_pb.js";
import { type ModelRuntime, ModelRuntimeSchema, ModelSchema } from "../gen/clipper/v1/resources_pb.js";
import { buildServices } from "../services/build.js";
import { createGrpcTransport, defaults, type GrpcTransport, parseInputType } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import { down, STOP_GRACE_MS, servicesStatus, up } from "./lifecycle.js";
import {
  appCreate,
  appDelete,
  appList,
  appPolicy,
  appUpdate,
  type ContainerManagerClient,
  deploymentStatus,
  link,
  type ManagementClient,
  modelBatching,
  modelDeploy,
  modelList,
  modelLogs,
  modelScale,
  modelSetVersion,
  predict,
  unlink,
} from "./management-commands.js";
import type { Output } from "./output.js";
import { type PolicyFlags, parsePolicy } from "./policy.js";
import type { ProgressOptions } from "./progress.js";
import { cliClientSecurity, createApiToken, createAppKey, parseRole } from "./security.js";
import { ShellWordsError, splitShellWords } from "./shell-words.js";
import { connectHost, isRunning, planServices, readServicesFile, removeServicesFile, type ServicesFile, stopServices } from "./supervisor.js";
import { runTop } from "./top.js";

/** What the CLI needs from its surroundings; main.ts passes the real process's. */
export interface CliEnvironment {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  cwd: string;
  /** The repository root: where services/ and the Python venv are. */
  repoRoot: string;
  fetch?: typeof fetch;
  progress?: ProgressOptions;
  /** Resolves when a foreground `clipper up` should stop (Ctrl-C); defaults to SIGINT/SIGTERM. */
  untilStopRequested?: () => Promise<string>;
}

export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    /** The command whose usage to print; undefined prints the overview. */
    readonly command?: CommandDef,
  ) {
    super(message);
  }
}

interface OptionDef {
  type: "string" | "boolean";
  /** Shown after the flag in help, e.g. "N". */
  value?: string;
  help: string;
}

type Values = Record<string, string | boolean | undefined>;

interface Invocation {
  command: CommandDef;
  values: Values;
  positionals: string[];
  env: CliEnvironment;
  dataDir: string;
  addresses: Addresses;
  management(): ManagementClient;
  containerManager(): ContainerManagerClient;
}

interface CommandDef {
  /** e.g. "model deploy". */
  name: string;
  summary: string;
  /** The arguments part of the synopsis. */
  synopsis: string;
  positionals: { required: string[]; optional?: string[] };
  options: Record<string, OptionDef>;
  examples: string[];
  run(inv: Invocation): Promise<number>;
}

const GLOBAL_OPTIONS: Record<string, OptionDef> = {
  "data-dir": { type: "string", value: "DIR", help: "data directory (env CLIPPER_DATA_DIR, default ~/.clipper/data)" },
  registry: { type: "string", value: "HOST:PORT", help: "registry address (default: from the data dir's services.json, else 127.0.0.1:1338)" },
  "container-manager": { type: "string", value: "HOST:PORT", help: "container-manager address (default: services.json, else 127.0.0.1:1340)" },
  gateway: { type: "string", value: "HOST:PORT", help: "gateway address (default: services.json, else 127.0.0.1:1337)" },
  token: { type: "string", value: "TOKEN", help: "API token for the registry and container-manager (env CLIPPER_TOKEN; prefer the env: flags show in ps)" },
  "tls-ca": { type: "string", value: "FILE", help: "CA of the services' certificates: talk TLS to them (env CLIPPER_TLS_CA)" },
  "tls-cert": { type: "string", value: "FILE", help: "client certificate for mutual TLS (env CLIPPER_TLS_CERT)" },
  "tls-key": { type: "string", value: "FILE", help: "key of --tls-cert (env CLIPPER_TLS_KEY)" },
  help: { type: "boolean", help: "show this help" },
};

const INPUT_TYPES = "bytes, ints, floats, doubles or strings";

const COMMANDS: CommandDef[] = [
  {
    name: "up",
    summary: "start the registry, container-manager and gateway (with the router inside it) on this machine",
    synopsis:
      "[--host H] [--gateway-port P] [--registry-port P] [--router-port P] [--container-manager-port P] [--router in-process|service] [--store embedded|redis] [--redis-url U] [--foreground]",
    positionals: { required: [] },
    options: {
      host: { type: "string", value: "HOST", help: "address the services bind (default 127.0.0.1)" },
      "gateway-port": { type: "string", value: "PORT", help: "gateway REST/gRPC port (default 1337; metrics on the same port)" },
      "registry-port": { type: "string", value: "PORT", help: "registry port (default 1338; metrics on port + 8000)" },
      "router-port": { type: "string", value: "PORT", help: "router port with --router service (default 1339; metrics on port + 8000)" },
      "container-manager-port": { type: "string", value: "PORT", help: "container-manager port (default 1340; metrics on port + 8000)" },
      router: {
        type: "string",
        value: "MODE",
        help: "in-process (default): the router runs inside the gateway, the fastest layout on one machine (its series on the gateway's /metrics); service: as its own process",
      },
      store: { type: "string", value: "KIND", help: "registry store: embedded (lmdb in the data dir, default) or redis" },
      "redis-url": { type: "string", value: "URL", help: "Redis URL for --store redis, e.g. redis://127.0.0.1:6379" },
      timeout: { type: "string", value: "SECONDS", help: "how long each service has to become healthy (default 60)" },
      foreground: { type: "boolean", help: "stay attached and stop everything on Ctrl-C" },
    },
    examples: [
      "clipper up",
      "clipper up --router service",
      "clipper up --data-dir /tmp/clipper --gateway-port 8080",
      "clipper up --store redis --redis-url redis://127.0.0.1:6379 --foreground",
    ],
    run: runUp,
  },
  {
    name: "down",
    summary: "stop the services started by `clipper up` (and their model replicas)",
    synopsis: "",
    positionals: { required: [] },
    options: {},
    examples: ["clipper down", "clipper down --data-dir /tmp/clipper"],
    run: async (inv) => {
      await down(inv.dataDir, inv.env.stdout);
      return 0;
    },
  },
  {
    name: "top",
    summary: "live throughput, latency percentiles, batch sizes and cache hit ratio per application and model",
    synopsis: "[--iterations N] [--interval-ms MS] [--router-metrics HOST:PORT]",
    positionals: { required: [] },
    options: {
      iterations: { type: "string", value: "N", help: "refresh N times, then exit (default: until Ctrl-C)" },
      "interval-ms": { type: "string", value: "MS", help: "time between refreshes (default 1000)" },
      "router-metrics": { type: "string", value: "HOST:PORT", help: "the router's metrics address (default: services.json, else 127.0.0.1:9339)" },
    },
    examples: ["clipper top", "clipper top --iterations 1"],
    run: async (inv) => {
      const iterations = inv.values.iterations === undefined ? undefined : intFlag(inv, "iterations", 1, 1, 1_000_000);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once("SIGINT", onSignal);
      try {
        await runTop({
          gatewayMetricsUrl: `http://${inv.addresses.gateway}/metrics`,
          routerMetricsUrl: `http://${stringFlag(inv, "router-metrics") ?? routerMetricsAddress(inv.dataDir)}/metrics`,
          iterations,
          intervalMs: intFlag(inv, "interval-ms", 1000, 0, 3_600_000),
          fetch: inv.env.fetch ?? fetch,
          out: inv.env.stdout,
          signal: stop.signal,
        });
      } finally {
        process.off("SIGINT", onSignal);
      }
      return 0;
    },
  },
  {
    name: "status",
    summary: "show the services, applications, models and replicas",
    synopsis: "",
    positionals: { required: [] },
    options: {},
    examples: ["clipper status"],
    run: async (inv) => {
      servicesStatus(inv.dataDir, inv.env.stdout);
      await deploymentStatus(inv.management(), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "app create",
    summary: "create an application (a prediction endpoint)",
    synopsis: "NAME --input-type TYPE --default-output TEXT [--slo-micros N] [--description TEXT]",
    positionals: { required: ["NAME"] },
    options: {
      "input-type": { type: "string", value: "TYPE", help: `type of each input: ${INPUT_TYPES}` },
      "default-output": { type: "string", value: "TEXT", help: "answered when no model answers within the SLO" },
      "slo-micros": { type: "string", value: "N", help: "latency objective in microseconds (default 100000)" },
      description: { type: "string", value: "TEXT", help: "free-form description" },
    },
    examples: ["clipper app create digits --input-type doubles --default-output -1.0 --slo-micros 100000"],
    run: async (inv) => {
      await appCreate(
        inv.management(),
        {
          name: positional(inv, 0),
          inputType: inputTypeFlag(inv, "input-type"),
          defaultOutput: requiredString(inv, "default-output"),
          sloMicros: BigInt(intFlag(inv, "slo-micros", 100_000, 1, Number.MAX_SAFE_INTEGER)),
          description: stringFlag(inv, "description") ?? "",
        },
        inv.env.stdout,
      );
      return 0;
    },
  },
  {
    name: "app list",
    summary: "list the applications and their linked models",
    synopsis: "",
    positionals: { required: [] },
    options: {},
    examples: ["clipper app list"],
    run: async (inv) => {
      await appList(inv.management(), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "app delete",
    summary: "delete an application",
    synopsis: "NAME",
    positionals: { required: ["NAME"] },
    options: {},
    examples: ["clipper app delete digits"],
    run: async (inv) => {
      await appDelete(inv.management(), positional(inv, 0), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "app update",
    summary: "change an application's SLO, default output, prediction cache or overload answer",
    synopsis: "NAME [--slo-micros N] [--default-output TEXT] [--cache on|off] [--default-on-overload on|off]",
    positionals: { required: ["NAME"] },
    options: {
      "slo-micros": { type: "string", value: "N", help: "latency objective in microseconds" },
      "default-output": { type: "string", value: "TEXT", help: "answered when no model answers within the SLO" },
      cache: { type: "string", value: "on|off", help: "cache predictions (keyed by model, version and input)" },
      "default-on-overload": { type: "string", value: "on|off", help: "answer the default output instead of 429 when a queue is full" },
    },
    examples: ["clipper app update digits --cache on", "clipper app update digits --slo-micros 20000 --default-on-overload on"],
    run: async (inv) => {
      const slo = stringFlag(inv, "slo-micros") === undefined ? undefined : BigInt(intFlag(inv, "slo-micros", undefined, 1, Number.MAX_SAFE_INTEGER));
      const defaultOutput = stringFlag(inv, "default-output");
      const cache = onOffFlag(inv, "cache");
      const onOverload = onOffFlag(inv, "default-on-overload");
      await appUpdate(
        inv.management(),
        {
          name: positional(inv, 0),
          ...(slo === undefined ? {} : { sloMicros: slo }),
          ...(defaultOutput === undefined ? {} : { defaultOutput }),
          ...(cache === undefined ? {} : { cacheEnabled: cache }),
          ...(onOverload === undefined ? {} : { defaultOnOverload: onOverload }),
        },
        inv.env.stdout,
      );
      return 0;
    },
  },
  {
    name: "app policy",
    summary: "set an application's model-selection policy (replaced whole, live)",
    synopsis:
      "NAME single|split|exp3|exp4|epsilon_greedy|thompson [--weights M=W,M:V=W] [--gamma G] [--eta E] [--epsilon E] [--loss zero_one|squared|absolute] [--loss-scale S]",
    positionals: { required: ["NAME", "POLICY"] },
    options: {
      weights: { type: "string", value: "M=W,...", help: "split: weight per linked model, or per model:version for a canary" },
      gamma: { type: "string", value: "G", help: "exp3: exploration rate in (0, 1] (default 0.1)" },
      eta: { type: "string", value: "E", help: "exp4: learning rate (default 0.5)" },
      epsilon: { type: "string", value: "E", help: "epsilon_greedy: probability of a random model" },
      loss: { type: "string", value: "KIND", help: "how feedback is scored: zero_one (default), squared, absolute" },
      "loss-scale": { type: "string", value: "S", help: "squared/absolute: the error that counts as the worst loss (default 1)" },
    },
    examples: [
      "clipper app policy digits exp3 --gamma 0.1",
      'clipper app policy digits split --weights "digits:1=0.9,digits:2=0.1"',
      "clipper app policy prices exp4 --loss absolute --loss-scale 10",
    ],
    run: async (inv) => {
      const flags: PolicyFlags = { kind: positional(inv, 1) };
      for (const [flag, field] of [
        ["weights", "weights"],
        ["gamma", "gamma"],
        ["eta", "eta"],
        ["epsilon", "epsilon"],
        ["loss", "loss"],
        ["loss-scale", "lossScale"],
      ] as const) {
        const v = stringFlag(inv, flag);
        if (v !== undefined) flags[field] = v;
      }
      const policy = wrapUsage(inv, () => parsePolicy(flags));
      await appPolicy(inv.management(), positional(inv, 0), policy, inv.env.stdout);
      return 0;
    },
  },
  {
    name: "model deploy",
    summary: "register a model version and start its replicas, waiting until they are ready",
    synopsis:
      'NAME --version V --input-type TYPE (--python FILE:FUNC | --node MODULE | --command "ARGV...") [--replicas N] [--batch-size N] [--set-current] [--timeout SECONDS]',
    positionals: { required: ["NAME"] },
    options: {
      version: { type: "string", value: "V", help: "the version label (letters, digits, '.', '_', '-')" },
      "input-type": { type: "string", value: "TYPE", help: `type of each input: ${INPUT_TYPES}` },
      python: { type: "string", value: "FILE:FUNC", help: "a Python function FUNC(inputs) -> outputs in FILE, run by the Python SDK" },
      node: { type: "string", value: "MODULE", help: "a Node module whose default export is a model (TypeScript SDK)" },
      command: { type: "string", value: "ARGV", help: "any program serving clipper.model.v1.ModelService on $CLIPPER_MODEL_PORT (split like a shell)" },
      replicas: { type: "string", value: "N", help: "replicas to run (default 1)" },
      "batch-size": { type: "string", value: "N", help: "largest batch sent to one replica (default 0: no limit)" },
      "set-current": { type: "boolean", help: "make this version current once ready (a model's first version always is)" },
      timeout: { type: "string", value: "SECONDS", help: "how long to wait for readiness (default: the container-manager's)" },
    },
    examples: [
      "clipper model deploy sum --version 1 --input-type doubles --python ./model.py:predict",
      "clipper model deploy echo --version 2 --input-type strings --node ./echo-model.ts --replicas 2 --set-current",
      'clipper model deploy custom --version 1 --input-type bytes --command "./bin/my-model --threads 2"',
    ],
    run: runDeploy,
  },
  {
    name: "model list",
    summary: "list model versions (current version marked *)",
    synopsis: "[NAME]",
    positionals: { required: [], optional: ["NAME"] },
    options: {},
    examples: ["clipper model list", "clipper model list sum"],
    run: async (inv) => {
      await modelList(inv.management(), inv.env.stdout, inv.positionals[0] ?? "");
      return 0;
    },
  },
  {
    name: "model set-version",
    summary: "make a version the one applications use (roll forward or back)",
    synopsis: "NAME VERSION",
    positionals: { required: ["NAME", "VERSION"] },
    options: {},
    examples: ["clipper model set-version sum 1"],
    run: async (inv) => {
      await modelSetVersion(inv.management(), positional(inv, 0), positional(inv, 1), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "model batching",
    summary: "set a version's batching knobs (applied by the router without a restart)",
    synopsis: "NAME VERSION [--max-batch-size N] [--max-wait-micros N|auto] [--max-in-flight N] [--max-queue-length N] [--fixed-size]",
    positionals: { required: ["NAME", "VERSION"] },
    options: {
      "max-batch-size": { type: "string", value: "N", help: "largest batch sent to one replica (0: no limit)" },
      "max-wait-micros": {
        type: "string",
        value: "N|auto",
        help: "longest a batch is held open to fill; auto (default) lets the router choose, 0 never waits",
      },
      "max-in-flight": { type: "string", value: "N", help: "batches in flight to one replica (0: the router's default)" },
      "max-queue-length": { type: "string", value: "N", help: "queries waiting before new ones are refused (0: the router's default)" },
      "fixed-size": { type: "boolean", help: "always send full batches of --max-batch-size (for models compiled for one shape)" },
    },
    examples: ["clipper model batching digits 1 --max-batch-size 64 --max-wait-micros 2000", "clipper model batching digits 1 --max-wait-micros auto"],
    run: async (inv) => {
      const wait = stringFlag(inv, "max-wait-micros");
      const maxBatch = stringFlag(inv, "max-batch-size") === undefined ? undefined : intFlag(inv, "max-batch-size", undefined, 0, 1_000_000);
      await modelBatching(
        inv.management(),
        {
          name: positional(inv, 0),
          version: positional(inv, 1),
          ...(maxBatch === undefined ? {} : { maxBatchSize: maxBatch }),
          batching: {
            ...(wait === undefined || wait === "auto" ? {} : { maxWaitMicros: intFlag(inv, "max-wait-micros", undefined, 0, 10_000_000) }),
            maxInFlightPerReplica: intFlag(inv, "max-in-flight", 0, 0, 64),
            maxQueueLength: intFlag(inv, "max-queue-length", 0, 0, 1_000_000),
            fixedSize: inv.values["fixed-size"] === true,
          },
        },
        inv.env.stdout,
      );
      return 0;
    },
  },
  {
    name: "model scale",
    summary: "set how many replicas of a version run, waiting for them",
    synopsis: "NAME [--version V] --replicas N [--timeout SECONDS]",
    positionals: { required: ["NAME"] },
    options: {
      version: { type: "string", value: "V", help: "the version (default: the current one)" },
      replicas: { type: "string", value: "N", help: "replicas to run (0 stops them)" },
      timeout: { type: "string", value: "SECONDS", help: "how long to wait (default: the container-manager's)" },
    },
    examples: ["clipper model scale sum --replicas 3", "clipper model scale sum --version 1 --replicas 0"],
    run: async (inv) => {
      await modelScale(
        inv.containerManager(),
        {
          name: positional(inv, 0),
          version: stringFlag(inv, "version") ?? "",
          replicas: intFlag(inv, "replicas", undefined, 0, 1000),
          timeoutSeconds: intFlag(inv, "timeout", 0, 0, 86_400),
        },
        inv.env.stdout,
      );
      return 0;
    },
  },
  {
    name: "model logs",
    summary: "print the captured output of a model's replicas",
    synopsis: "NAME [--version V] [--tail N]",
    positionals: { required: ["NAME"] },
    options: {
      version: { type: "string", value: "V", help: "the version (default: the current one)" },
      tail: { type: "string", value: "N", help: "the last N lines of each replica (default 200)" },
    },
    examples: ["clipper model logs sum", "clipper model logs sum --version 2 --tail 50"],
    run: async (inv) => {
      await modelLogs(
        inv.containerManager(),
        { modelName: positional(inv, 0), modelVersion: stringFlag(inv, "version") ?? "", tailLines: intFlag(inv, "tail", 200, 1, 100_000) },
        inv.env.stdout,
      );
      return 0;
    },
  },
  {
    name: "token create",
    summary: "create an API token and append its hash to the tokens file; the token is printed once",
    synopsis: "--role admin|read-only|service --name NAME [--tokens-file FILE]",
    positionals: { required: [] },
    options: {
      role: { type: "string", value: "ROLE", help: "admin (everything), read-only (Get/List/Watch), service (what the container-manager needs)" },
      name: { type: "string", value: "NAME", help: "who the token is for, shown in refusals" },
      "tokens-file": { type: "string", value: "FILE", help: "tokens file (env CLIPPER_TOKENS_FILE, default <data-dir>/tokens)" },
    },
    examples: ["clipper token create --role admin --name ops", "clipper token create --role read-only --name dashboard --tokens-file /etc/clipper/tokens"],
    run: async (inv) => {
      const file = path.resolve(inv.env.cwd, stringFlag(inv, "tokens-file") ?? (inv.env.env.CLIPPER_TOKENS_FILE || path.join(inv.dataDir, "tokens")));
      const token = wrapUsage(inv, () => createApiToken(file, parseRole(stringFlag(inv, "role")), requiredString(inv, "name")));
      inv.env.stdout.write(`${token}
`);
      inv.env.stderr.write(`added to ${file}; this is the only time the token is shown. Services read the file when they start.\n`);
      return 0;
    },
  },
  {
    name: "key create",
    summary: "create a prediction key for an application and append its hash to the gateway's keys file; printed once",
    synopsis: "--app APP|'*' --name NAME [--keys-file FILE]",
    positionals: { required: [] },
    options: {
      app: { type: "string", value: "APP", help: "application the key opens; * for every application" },
      name: { type: "string", value: "NAME", help: "label of the key (who holds it)" },
      "keys-file": { type: "string", value: "FILE", help: "gateway keys file (env CLIPPER_GATEWAY_APP_KEYS_FILE, default <data-dir>/app-keys)" },
    },
    examples: ["clipper key create --app digits --name web-frontend"],
    run: async (inv) => {
      const file = path.resolve(inv.env.cwd, stringFlag(inv, "keys-file") ?? (inv.env.env.CLIPPER_GATEWAY_APP_KEYS_FILE || path.join(inv.dataDir, "app-keys")));
      const key = wrapUsage(inv, () => createAppKey(file, requiredString(inv, "app"), requiredString(inv, "name")));
      inv.env.stdout.write(`${key}\n`);
      inv.env.stderr.write(`added to ${file}; this is the only time the key is shown. The gateway reads the file when it starts.\n`);
      return 0;
    },
  },
  {
    name: "link",
    summary: "route an application's queries to a model",
    synopsis: "APP MODEL",
    positionals: { required: ["APP", "MODEL"] },
    options: {},
    examples: ["clipper link digits sum"],
    run: async (inv) => {
      await link(inv.management(), positional(inv, 0), positional(inv, 1), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "unlink",
    summary: "stop routing an application's queries to a model",
    synopsis: "APP MODEL",
    positionals: { required: ["APP", "MODEL"] },
    options: {},
    examples: ["clipper unlink digits sum"],
    run: async (inv) => {
      await unlink(inv.management(), positional(inv, 0), positional(inv, 1), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "predict",
    summary: "send a query to an application through the gateway's REST API and print the answer",
    synopsis: "APP INPUT_JSON [--version V] [--batch]",
    positionals: { required: ["APP", "INPUT_JSON"] },
    options: {
      version: { type: "string", value: "V", help: "ask for this model version instead of the current one" },
      batch: { type: "boolean", help: "INPUT_JSON is a list of inputs (sent as input_batch)" },
    },
    examples: ["clipper predict digits '[1.0, 2.0, 3.0]'", "clipper predict digits '[[1.0], [2.0]]' --batch", "clipper predict greet '\"hello\"'"],
    run: async (inv) => {
      const raw = positional(inv, 1);
      let input: unknown;
      try {
        input = JSON.parse(raw);
      } catch (err) {
        throw new UsageError(`INPUT_JSON is not valid JSON (${(err as Error).message}): ${raw}`, commandNamed("predict"));
      }
      const batch = inv.values.batch === true;
      if (batch && !Array.isArray(input)) throw new UsageError("with --batch, INPUT_JSON must be a JSON list of inputs", commandNamed("predict"));
      await predict(
        inv.env.fetch ?? fetch,
        { gateway: inv.addresses.gateway, application: positional(inv, 0), input, batch, version: stringFlag(inv, "version") ?? "" },
        inv.env.stdout,
      );
      return 0;
    },
  },
];

const GROUPS: Record<string, string> = {
  app: "applications: create, list, delete",
  model: "models: deploy, list, set-version, scale, logs",
  token: "API tokens: create",
  key: "prediction keys: create",
};

function commandNamed(name: string): CommandDef {
  const def = COMMANDS.find((c) => c.name === name);
  if (def === undefined) throw new Error(`no command ${name}`);
  return def;
}

/** Runs the CLI and returns its exit status; never throws. */
export async function runCli(argv: string[], env: CliEnvironment): Promise<number> {
  const transports: GrpcTransport[] = [];
  try {
    const found = findCommand(moveLeadingGlobalOptions(argv));
    if (found === "help") {
      env.stdout.write(overview());
      return 0;
    }
    const { def, rest } = found;
    const parsed = parse(def, rest);
    if (parsed.values.help === true) {
      env.stdout.write(commandHelp(def));
      return 0;
    }
    checkPositionals(def, parsed.positionals);
    const dataDir = resolveDataDir(parsed.values, env);
    const addresses = resolveAddresses(parsed.values, dataDir);
    const security = wrapUsage(def, () =>
      cliClientSecurity((flag, envName) => {
        const v = parsed.values[flag];
        return typeof v === "string" && v !== "" ? v : env.env[envName] || undefined;
      }),
    );
    const transport = (address: string) => {
      const t = createGrpcTransport({ address, ...security });
      transports.push(t);
      return t;
    };
    let management: ManagementClient | undefined;
    let containerManager: ContainerManagerClient | undefined;
    return await def.run({
      command: def,
      values: parsed.values,
      positionals: parsed.positionals,
      env,
      dataDir,
      addresses,
      management: () => (management ??= createClient(ManagementService, transport(addresses.registry))),
      containerManager: () => (containerManager ??= createClient(ContainerManagerService, transport(addresses.containerManager))),
    });
  } catch (err) {
    return reportError(err, env);
  } finally {
    for (const t of transports) t.close();
  }
}

function reportError(err: unknown, env: CliEnvironment): number {
  if (err instanceof UsageError) {
    env.stderr.write(`error: ${err.message}\n\n${err.command === undefined ? overview() : commandHelp(err.command)}`);
    return 2;
  }
  if (err instanceof ConnectError) {
    env.stderr.write(`error: ${err.rawMessage}\n`);
    if (err.code === Code.Unavailable) env.stderr.write("(is `clipper up` running, and are --registry/--container-manager right?)\n");
    if (err.code === Code.Unauthenticated) env.stderr.write("(pass an API token: --token or $CLIPPER_TOKEN; see docs/security.md)\n");
    return 1;
  }
  if (err instanceof CliError) {
    env.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  env.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
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
  if (first in GROUPS) {
    if (second === "--help" || second === "-h") return { def: groupHelp(first), rest: ["--help"] };
    if (second === undefined || second.startsWith("-")) throw new UsageError(`\`clipper ${first}\` needs a subcommand`, groupHelp(first));
    const def = COMMANDS.find((c) => c.name === `${first} ${second}`);
    if (def === undefined) throw new UsageError(`unknown command \`clipper ${first} ${second}\`; \`clipper ${first}\` has ${GROUPS[first]}`);
    return { def, rest: others };
  }
  const def = COMMANDS.find((c) => c.name === first);
  if (def === undefined) throw new UsageError(`unknown command \`${first}\``);
  return { def, rest: argv.slice(1) };
}

/** A pseudo-command whose help lists a group's subcommands. */
function groupHelp(group: string): CommandDef {
  const members = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return {
    name: group,
    summary: GROUPS[group] ?? group,
    synopsis: `<${members.map((c) => c.name.slice(group.length + 1)).join("|")}> ...`,
    positionals: { required: [] },
    options: {},
    examples: members.flatMap((c) => c.examples.slice(0, 1)),
    run: () => Promise.resolve(0),
  };
}

function parse(def: CommandDef, args: string[]): { values: Values; positionals: string[] } {
  const options = { ...def.options, ...GLOBAL_OPTIONS };
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(args, options),
      options: Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(name === "help" ? { short: "h" } : {}) }])),
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Values, positionals };
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

function overview(): string {
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

function commandHelp(def: CommandDef): string {
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

function positional(inv: Invocation, index: number): string {
  return inv.positionals[index] ?? "";
}

function stringFlag(inv: Invocation, name: string): string | undefined {
  const v = inv.values[name];
  return typeof v === "string" ? v : undefined;
}

function requiredString(inv: Invocation, name: string): string {
  const v = stringFlag(inv, name);
  if (v === undefined) throw new UsageError(`--${name} is required`, currentDef(inv));
  return v;
}

function intFlag(inv: Invocation, name: string, fallback: number | undefined, min: number, max: number): number {
  const raw = stringFlag(inv, name);
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`, currentDef(inv));
    return fallback;
  }
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`, currentDef(inv));
  }
  return Number(raw);
}

function onOffFlag(inv: Invocation, name: string): boolean | undefined {
  const raw = stringFlag(inv, name);
  if (raw === undefined) return undefined;
  if (raw === "on") return true;
  if (raw === "off") return false;
  throw new UsageError(`--${name} must be on or off, got "${raw}"`, currentDef(inv));
}

function inputTypeFlag(inv: Invocation, name: string): InputType {
  const raw = requiredString(inv, name);
  try {
    return parseInputType(raw);
  } catch {
    throw new UsageError(`--${name} "${raw}" is not an input type: use ${INPUT_TYPES}`, currentDef(inv));
  }
}

/** Runs a check whose Error becomes a usage error of the command. */
function wrapUsage<T>(invOrDef: Invocation | CommandDef, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(err instanceof Error ? err.message : String(err), "command" in invOrDef ? invOrDef.command : invOrDef);
  }
}

/** The command being run, for usage errors raised while reading its flags. */
function currentDef(inv: Invocation): CommandDef {
  return inv.command;
}

interface Addresses {
  registry: string;
  containerManager: string;
  gateway: string;
}

export function resolveDataDir(values: Values, env: CliEnvironment): string {
  const flag = values["data-dir"];
  const raw = typeof flag === "string" ? flag : env.env.CLIPPER_DATA_DIR || path.join(os.homedir(), ".clipper", "data");
  return path.resolve(env.cwd, raw);
}

/** Flags win; then what `clipper up` recorded in the data dir; then the default ports on 127.0.0.1. */
export function resolveAddresses(values: Values, dataDir: string): Addresses {
  let file: ServicesFile | undefined;
  try {
    file = readServicesFile(dataDir);
  } catch {
    file = undefined;
  }
  const recorded = (name: string, port: number) => {
    const s = file?.services.find((x) => x.name === name);
    return s === undefined ? `127.0.0.1:${port}` : `${connectHost(s.host)}:${s.port}`;
  };
  const pick = (flag: string, name: string, port: number) => {
    const v = values[flag];
    return typeof v === "string" ? v : recorded(name, port);
  };
  return {
    registry: pick("registry", "registry", defaults.registryPort),
    containerManager: pick("container-manager", "container-manager", defaults.containerManagerPort),
    gateway: pick("gateway", "gateway", defaults.gatewayPort),
  };
}

/** The router's metrics address recorded by `clipper up` (the gateway's port when it runs the router in-process), else the default metrics port. */
function routerMetricsAddress(dataDir: string): string {
  let file: ServicesFile | undefined;
  try {
    file = readServicesFile(dataDir);
  } catch {
    file = undefined;
  }
  const router = file?.services.find((s) => s.name === "router");
  if (router !== undefined && router.metricsPort !== null) return `${connectHost(router.host)}:${router.metricsPort}`;
  const gateway = file?.services.find((s) => s.name === "gateway");
  if (router === undefined && gateway !== undefined) return `${connectHost(gateway.host)}:${gateway.port}`;
  return `127.0.0.1:${defaults.routerMetricsPort}`;
}

async function runUp(inv: Invocation): Promise<number> {
  const port = (flag: string, fallback: number) => intFlag(inv, flag, fallback, 1, 65535);
  const store = stringFlag(inv, "store") ?? "embedded";
  if (store !== "embedded" && store !== "redis") throw new UsageError(`--store must be embedded or redis, got "${store}"`, currentDef(inv));
  const redisUrl = stringFlag(inv, "redis-url");
  if (store === "redis" && redisUrl === undefined) throw new UsageError("--store redis needs --redis-url", currentDef(inv));
  const host = stringFlag(inv, "host") ?? "127.0.0.1";
  const routerMode = stringFlag(inv, "router") ?? "in-process";
  if (routerMode !== "service" && routerMode !== "in-process")
    throw new UsageError(`--router must be service or in-process, got "${routerMode}"`, currentDef(inv));
  let launches: ReturnType<typeof planServices>;
  try {
    launches = planServices({
      repoRoot: inv.env.repoRoot,
      dataDir: inv.dataDir,
      host,
      ports: {
        gateway: port("gateway-port", defaults.gatewayPort),
        registry: port("registry-port", defaults.registryPort),
        router: port("router-port", defaults.routerPort),
        containerManager: port("container-manager-port", defaults.containerManagerPort),
      },
      store,
      ...(redisUrl === undefined ? {} : { redisUrl }),
      routerInProcess: routerMode === "in-process",
    });
  } catch (err) {
    throw new UsageError((err as Error).message, currentDef(inv));
  }
  // The services run from bundles (services/build.ts), built from the sources at hand.
  await buildServices(inv.env.repoRoot);
  const file = await up(
    {
      dataDir: inv.dataDir,
      host,
      launches,
      healthTimeoutMs: intFlag(inv, "timeout", 60, 1, 3600) * 1000,
      portFlags: { gateway: "--gateway-port", registry: "--registry-port", router: "--router-port", "container-manager": "--container-manager-port" },
    },
    inv.env.stdout,
  );
  if (file === undefined || inv.values.foreground !== true) return 0;
  inv.env.stdout.write("running in the foreground; press Ctrl-C to stop\n");
  const watching = new AbortController();
  const reason = await Promise.race([(inv.env.untilStopRequested ?? untilSignal)(), untilAnyExits(file, watching.signal)]);
  watching.abort();
  inv.env.stdout.write(`${reason}; stopping\n`);
  await stopServices(file, { graceMs: STOP_GRACE_MS, onProgress: (line) => inv.env.stdout.write(`${line}\n`) });
  removeServicesFile(inv.dataDir);
  inv.env.stdout.write("clipper is down\n");
  return reason.startsWith("received") ? 0 : 1;
}

function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      resolve(`received ${signal}`);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

/** Polls the services until one exits; the pending poll keeps a foreground CLI alive. */
async function untilAnyExits(file: ServicesFile, signal: AbortSignal): Promise<string> {
  while (!signal.aborted) {
    const gone = file.services.find((s) => !isRunning(s));
    if (gone !== undefined) return `${gone.name} exited (see ${gone.log})`;
    await sleep(500, undefined, { signal }).catch(() => undefined);
  }
  return "stopped watching";
}

async function runDeploy(inv: Invocation): Promise<number> {
  const def = currentDef(inv);
  const runtimes = (["python", "node", "command"] as const).filter((k) => stringFlag(inv, k) !== undefined);
  if (runtimes.length !== 1) throw new UsageError("give exactly one of --python FILE:FUNC, --node MODULE or --command ARGV", def);
  const model = create(ModelSchema, {
    name: positional(inv, 0),
    version: requiredString(inv, "version"),
    inputType: inputTypeFlag(inv, "input-type"),
    runtime: deployRuntime(inv.values, inv.env, runtimes[0] as "python" | "node" | "command", def),
    desiredReplicas: intFlag(inv, "replicas", 1, 0, 1000),
    maxBatchSize: intFlag(inv, "batch-size", 0, 0, 1_000_000),
  });
  await modelDeploy(
    inv.containerManager(),
    { model, setCurrent: inv.values["set-current"] === true, timeoutSeconds: intFlag(inv, "timeout", 0, 0, 86_400) },
    inv.env.stdout,
    inv.env.progress,
  );
  return 0;
}

/** The runtime for a deploy's --python, --node or --command flag. */
export function deployRuntime(
  values: Values,
  env: Pick<CliEnvironment, "cwd" | "repoRoot" | "env">,
  kind: "python" | "node" | "command",
  def?: CommandDef,
): ModelRuntime {
  const value = values[kind];
  if (typeof value !== "string") throw new UsageError(`--${kind} needs a value`, def);
  const { cwd, repoRoot } = env;
  switch (kind) {
    case "python": {
      const colon = value.lastIndexOf(":");
      if (colon <= 0 || colon === value.length - 1) throw new UsageError(`--python must be FILE:FUNC, got "${value}"`, def);
      const file = path.resolve(cwd, value.slice(0, colon));
      const func = value.slice(colon + 1);
      if (!fs.existsSync(file)) throw new CliError(`--python: ${file} does not exist`);
      const venvPython = path.join(repoRoot, ".venv", "bin", "python");
      const python = fs.existsSync(venvPython) ? venvPython : "python3";
      // The SDK's sources, so `-m clipper_runtime...` works without installing the SDK into that Python.
      const sdk = path.join(repoRoot, "sdk", "python", "src");
      const pythonPath = [sdk, env.env.PYTHONPATH].filter((p) => p !== undefined && p !== "").join(path.delimiter);
      return create(ModelRuntimeSchema, {
        kind: {
          case: "command",
          value: { argv: [python, "-m", "clipper_runtime.file_runner", file, func], env: { PYTHONPATH: pythonPath }, workingDir: cwd },
        },
      });
    }
    case "node": {
      const modulePath = path.resolve(cwd, value);
      if (!fs.existsSync(modulePath)) throw new CliError(`--node: ${modulePath} does not exist`);
      return create(ModelRuntimeSchema, { kind: { case: "nodeModule", value: { modulePath } } });
    }
    case "command": {
      let argv: string[];
      try {
        argv = splitShellWords(value);
      } catch (err) {
        if (err instanceof ShellWordsError) throw new UsageError(`--command: ${err.message}`, def);
        throw err;
      }
      if (argv.length === 0) throw new UsageError("--command is empty", def);
      return create(ModelRuntimeSchema, { kind: { case: "command", value: { argv, workingDir: cwd } } });
    }
  }
}
