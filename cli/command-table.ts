/**
 * The command table: each command's name, synopsis, flags and examples (what
 * help shows), and how its flags become the call it makes. `up` and
 * `model deploy` run from lifecycle.ts and deploy.ts.
 */
import path from "node:path";
import { runDeploy } from "./deploy.js";
import {
  type CommandDef,
  INPUT_TYPES,
  inputTypeFlag,
  intFlag,
  type OptionDef,
  onOffFlag,
  positional,
  requiredString,
  stringFlag,
  UsageError,
  wrapUsage,
} from "./invocation.js";
import { clustersList, down, restartService, runUp, servicesStatus } from "./lifecycle.js";
import {
  appCreate,
  appDelete,
  appList,
  appPolicy,
  appUpdate,
  deploymentStatus,
  link,
  modelBatching,
  modelList,
  modelLogs,
  modelScale,
  modelSetVersion,
  predict,
  unlink,
} from "./management-commands.js";
import { type PolicyFlags, parsePolicy } from "./policy.js";
import { createApiToken, createAppKey, parseRole } from "./security.js";
import { routerMetricsAddress } from "./service-addresses.js";
import { runTop } from "./top.js";

/** Flags every command takes: where the data and the services are, and how to reach them. */
export const GLOBAL_OPTIONS: Record<string, OptionDef> = {
  cluster: {
    type: "string",
    value: "NAME",
    help: "which system on this machine (env CLIPPER_CLUSTER, default: default): a named one has its own data dir (<home>/clusters/NAME) and ports (`clipper clusters` lists them)",
  },
  "data-dir": {
    type: "string",
    value: "DIR",
    help: "data directory (default cluster: env CLIPPER_DATA_DIR, else ~/.clipper/data; a named one: $CLIPPER_HOME or ~/.clipper, then clusters/NAME)",
  },
  registry: { type: "string", value: "HOST:PORT", help: "registry address (default: from the data dir's services.json, else 127.0.0.1:1338)" },
  "container-manager": { type: "string", value: "HOST:PORT", help: "container-manager address (default: services.json, else 127.0.0.1:1340)" },
  gateway: { type: "string", value: "HOST:PORT", help: "gateway address (default: services.json, else 127.0.0.1:1337)" },
  token: { type: "string", value: "TOKEN", help: "API token for the registry and container-manager (env CLIPPER_TOKEN; prefer the env: flags show in ps)" },
  "tls-ca": { type: "string", value: "FILE", help: "CA of the services' certificates: talk TLS to them (env CLIPPER_TLS_CA)" },
  "tls-cert": { type: "string", value: "FILE", help: "client certificate for mutual TLS (env CLIPPER_TLS_CERT)" },
  "tls-key": { type: "string", value: "FILE", help: "key of --tls-cert (env CLIPPER_TLS_KEY)" },
  kubeconfig: {
    type: "string",
    value: "FILE",
    help: "a system on Kubernetes (env CLIPPER_KUBECONFIG): its services are found in --namespace by their Services' ready pods; --cluster is its cluster name there (docs/kubernetes.md)",
  },
  namespace: { type: "string", value: "NS", help: "with --kubeconfig: the namespace Clipper runs in (env CLIPPER_NAMESPACE, default clipper)" },
  help: { type: "boolean", help: "show this help" },
};

/** Every command, in the order the overview lists them. */
export const COMMANDS: CommandDef[] = [
  {
    name: "up",
    summary: "start the registry, container-manager, gateway (with the router inside it) and console on this machine",
    synopsis:
      "[--host H] [--gateway-port P] [--registry-port P] [--router-port P] [--container-manager-port P] [--console-port P] [--router in-process|service] [--store embedded|redis] [--redis-url U] [--foreground]",
    positionals: { required: [] },
    options: {
      host: { type: "string", value: "HOST", help: "address the services bind (default 127.0.0.1)" },
      "gateway-port": { type: "string", value: "PORT", help: "gateway REST/gRPC port (default 1337; metrics on the same port)" },
      "registry-port": { type: "string", value: "PORT", help: "registry port (default 1338; metrics on port + 8000)" },
      "router-port": { type: "string", value: "PORT", help: "router port with --router service (default 1339; metrics on port + 8000)" },
      "container-manager-port": { type: "string", value: "PORT", help: "container-manager port (default 1340; metrics on port + 8000)" },
      "console-port": {
        type: "string",
        value: "PORT",
        help: "the operator's console, a web page (default the gateway's port + 4, so 1341; metrics on the same port)",
      },
      router: {
        type: "string",
        value: "MODE",
        help: "in-process (default): the router runs inside the gateway, the fastest layout on one machine (its series on the gateway's /metrics); service: as its own process",
      },
      store: { type: "string", value: "KIND", help: "registry store: embedded (lmdb in the data dir, default) or redis" },
      "redis-url": { type: "string", value: "URL", help: "Redis URL for --store redis, e.g. redis://127.0.0.1:6379" },
      timeout: { type: "string", value: "SECONDS", help: "how long each service has to become healthy (default 60)" },
      foreground: { type: "boolean", help: "stay attached (restarting a service that exits) and stop everything on Ctrl-C" },
    },
    examples: [
      "clipper up",
      "clipper up --cluster staging   # a second system beside the default one: its own data dir and free ports",
      "clipper up --router service",
      "clipper up --data-dir /tmp/clipper --gateway-port 8080",
      "clipper up --store redis --redis-url redis://127.0.0.1:6379 --foreground",
    ],
    run: runUp,
  },
  {
    name: "down",
    summary: "stop the services started by `clipper up`, their supervisor and every model replica (also those a dead container-manager left)",
    synopsis: "",
    positionals: { required: [] },
    options: {},
    examples: ["clipper down", "clipper down --cluster staging", "clipper down --data-dir /tmp/clipper"],
    run: async (inv) => {
      await down(inv.dataDir, inv.env.stdout);
      return 0;
    },
  },
  {
    name: "restart",
    summary: "restart one service started by `clipper up`, the others untouched (the container-manager keeps its model replicas)",
    synopsis: "SERVICE",
    positionals: { required: ["SERVICE"] },
    options: {},
    examples: ["clipper restart gateway", "clipper restart container-manager"],
    run: async (inv) => {
      await restartService(inv.dataDir, positional(inv, 0), inv.env.stdout);
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
    examples: ["clipper status", "clipper --cluster staging status", "clipper --kubeconfig ~/.kube/config --namespace clipper status"],
    run: async (inv) => {
      if (inv.kubernetes !== undefined) await inv.kubernetes.writeStatus(inv.env.stdout);
      else servicesStatus(inv.dataDir, inv.env.stdout, inv.cluster);
      await deploymentStatus(inv.management(), inv.env.stdout);
      return 0;
    },
  },
  {
    name: "clusters",
    summary: "list the Clipper systems on this machine (the default one and each `clipper up --cluster NAME`) with their state and ports",
    synopsis: "",
    positionals: { required: [] },
    options: {},
    examples: ["clipper clusters"],
    run: async (inv) => {
      clustersList(inv.env.env, inv.env.cwd, inv.env.stdout);
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
      const policy = wrapUsage(inv.command, () => parsePolicy(flags));
      await appPolicy(inv.management(), positional(inv, 0), policy, inv.env.stdout);
      return 0;
    },
  },
  {
    name: "model deploy",
    summary: "register a model version and start its replicas, waiting until they are ready",
    synopsis:
      'NAME --version V --input-type TYPE (--python FILE:FUNC | --node MODULE | --java JAR:CLASS [--jvm-options="OPTS"] | --r FILE | --command "ARGV...") [--replicas N] [--batch-size N] [--set-current] [--timeout SECONDS]',
    positionals: { required: ["NAME"] },
    options: {
      version: { type: "string", value: "V", help: "the version label (letters, digits, '.', '_', '-')" },
      "input-type": { type: "string", value: "TYPE", help: `type of each input: ${INPUT_TYPES}` },
      python: { type: "string", value: "FILE:FUNC", help: "a Python function FUNC(inputs) -> outputs in FILE, run by the Python SDK" },
      node: { type: "string", value: "MODULE", help: "a Node module whose default export is a model (TypeScript SDK)" },
      java: {
        type: "string",
        value: "JAR:CLASS",
        help: "a class implementing ai.clipper.Model in JAR (Java SDK); the jar is uploaded to the container-manager, which runs it with the SDK's ModelMain",
      },
      r: {
        type: "string",
        value: "FILE",
        help: "an R model (R SDK, sdk/r): an .rds from clippermodel::save_model, or an .R script that defines predict; uploaded to the container-manager, served over the Connect protocol",
      },
      "jvm-options": { type: "string", value: "OPTS", help: 'with --java: JVM options, split like a shell, after "=" (--jvm-options="-Xmx512m -Dk=v")' },
      command: { type: "string", value: "ARGV", help: "any program serving clipper.model.v1.ModelService on $CLIPPER_MODEL_PORT (split like a shell)" },
      replicas: { type: "string", value: "N", help: "replicas to run (default 1)" },
      "batch-size": { type: "string", value: "N", help: "largest batch sent to one replica (default 0: no limit)" },
      requests: { type: "string", value: "RES=QTY,...", help: "what one replica asks for on Kubernetes (cpu=500m,memory=256Mi)" },
      limits: { type: "string", value: "RES=QTY,...", help: "what one replica may use on Kubernetes (memory=512Mi,nvidia.com/gpu=1)" },
      "set-current": { type: "boolean", help: "make this version current once ready (a model's first version always is)" },
      timeout: { type: "string", value: "SECONDS", help: "how long to wait for readiness (default: the container-manager's)" },
    },
    examples: [
      "clipper model deploy sum --version 1 --input-type doubles --python ./model.py:predict",
      "clipper model deploy echo --version 2 --input-type strings --node ./echo-model.ts --replicas 2 --set-current",
      "clipper model deploy sum-java --version 1 --input-type doubles --java ./app.jar:com.example.SumModel",
      "clipper model deploy sum-r --version 1 --input-type doubles --r ./sum.rds",
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
      const token = wrapUsage(inv.command, () => createApiToken(file, parseRole(stringFlag(inv, "role")), requiredString(inv, "name")));
      inv.env.stdout.write(`${token}\n`);
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
      const key = wrapUsage(inv.command, () => createAppKey(file, requiredString(inv, "app"), requiredString(inv, "name")));
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
        throw new UsageError(`INPUT_JSON is not valid JSON (${(err as Error).message}): ${raw}`, inv.command);
      }
      const batch = inv.values.batch === true;
      if (batch && !Array.isArray(input)) throw new UsageError("with --batch, INPUT_JSON must be a JSON list of inputs", inv.command);
      await predict(
        inv.env.fetch ?? fetch,
        { gateway: inv.addresses.gateway, application: positional(inv, 0), input, batch, version: stringFlag(inv, "version") ?? "" },
        inv.env.stdout,
      );
      return 0;
    },
  },
];

/** The words that start two-word commands, with what `clipper <group> --help` and its errors say they hold. */
export const COMMAND_GROUPS: Record<string, string> = {
  app: "applications: create, list, delete",
  model: "models: deploy, list, set-version, scale, logs",
  token: "API tokens: create",
  key: "prediction keys: create",
};
