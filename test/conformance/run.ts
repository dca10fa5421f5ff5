import type { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { CHECKS, type Check, type CheckContext, checkSigterm, Failure, type KitSettings, Skip, waitUntilServing } from "./checks.js";
import { ConnectModelWire } from "./connect-wire.js";
import { Container, type ContainerSpec } from "./container.js";
import { INPUT_TYPES, LOAD_MS_VARIABLE, typeName } from "./contract.js";
import { ModelWire, Unsupported } from "./wire.js";

// Runs the checks against a container command: one container per input type (the first type's
// also gets the checks that run once, the readiness check while its model loads, and SIGTERM
// last). Every result is handed to `onResult` as it is known, so a table can be printed row by row.

export type Outcome = "pass" | "fail" | "skip";

export interface CheckResult {
  id: string;
  inputType: string;
  outcome: Outcome;
  ms: number;
  detail: string;
}

export interface KitOptions extends Partial<KitSettings> {
  container: ContainerSpec;
  /** Default: all five, doubles first. */
  inputTypes?: readonly InputType[];
  /** Check ids to run (default all); "start", "readiness" and "sigterm" are ids too. */
  only?: readonly string[];
  skip?: readonly string[];
  /** Check ids that must pass: a skip of one is a failure (the optional metrics, for a runtime that serves them). */
  require?: readonly string[];
  /** Longest time one check may take. */
  checkTimeoutMs?: number;
  /** How the container is spoken to: gRPC (default), or the Connect protocol on HTTP/1.1 (unary calls, for R). */
  protocol?: "grpc" | "connect";
  onResult?: (result: CheckResult) => void;
}

export const DEFAULT_SETTINGS: KitSettings = {
  name: "conformance",
  version: "1",
  loadMs: 1500,
  maxMessageBytes: 64 * 1024 * 1024,
  maxBatch: 4096,
  nulInStrings: true,
  startTimeoutMs: 60_000,
  stopGraceMs: 5000,
};

/** Every check id in the order they run, with what it checks. */
export const CHECK_LIST: readonly { id: string; once: boolean; title: string }[] = [
  { id: "start", once: false, title: "The container listens on CLIPPER_MODEL_PORT and grpc.health.v1 says SERVING within --start-timeout-ms" },
  {
    id: "readiness",
    once: true,
    title: `While the model loads (${LOAD_MS_VARIABLE}), health is never SERVING (port closed or NOT_SERVING) and no batch is answered; then SERVING`,
  },
  ...CHECKS.map(({ id, once, title }) => ({ id, once, title })),
  { id: "sigterm", once: true, title: "SIGTERM with a Predict and a stream batch in flight: both answered, health not SERVING, exit 0 within the grace" },
];

const live = new Set<Container>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A kit stopped half-way must not leave containers behind (each runs in its own process group).
  process.once("exit", () => {
    for (const c of live) if (c.pid !== undefined) tryKillGroup(c.pid);
  });
}

function tryKillGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

export async function runConformance(options: KitOptions): Promise<CheckResult[]> {
  installExitHook();
  const settings: KitSettings = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof KitSettings)[]) {
    const value = options[key];
    if (value !== undefined) (settings as unknown as Record<string, unknown>)[key] = value;
  }
  const types = options.inputTypes ?? INPUT_TYPES;
  const wanted = (id: string) => (options.only === undefined || options.only.includes(id)) && !(options.skip ?? []).includes(id);
  const checkTimeoutMs = options.checkTimeoutMs ?? 120_000;
  const results: CheckResult[] = [];
  const required = new Set(options.require ?? []);
  const report = (result: CheckResult) => {
    const r: CheckResult =
      result.outcome === "skip" && required.has(result.id) ? { ...result, outcome: "fail", detail: `required, but skipped: ${result.detail}` } : result;
    results.push(r);
    options.onResult?.(r);
  };

  for (const [index, type] of types.entries()) {
    const primary = index === 0;
    const loading = primary && wanted("readiness");
    const container = await Container.start(options.container, {
      name: settings.name,
      version: settings.version,
      inputType: typeName(type),
      ...(loading ? { env: { [LOAD_MS_VARIABLE]: String(settings.loadMs) } } : {}),
    });
    live.add(container);
    const wire = options.protocol === "connect" ? new ConnectModelWire(container.address) : new ModelWire(container.address);
    const ctx: CheckContext = { type, wire, container, settings };
    try {
      const started = await runOne(ctx, loading ? "readiness" : "start", checkTimeoutMs, report, () => waitUntilServing(ctx, loading));
      if (!started) continue;
      const checks = CHECKS.filter((c: Check) => (primary || !c.once) && wanted(c.id));
      for (const check of checks) await runOne(ctx, check.id, checkTimeoutMs, report, () => check.run(ctx));
      if (primary && wanted("sigterm")) await runOne(ctx, "sigterm", checkTimeoutMs, report, () => checkSigterm(ctx));
    } finally {
      wire.close();
      container.signal("SIGTERM");
      await Promise.race([container.exited, new Promise((resolve) => setTimeout(resolve, settings.stopGraceMs).unref())]);
      await container.kill();
      live.delete(container);
    }
  }
  return results;
}

/** Runs one check with a time limit; returns whether it passed (or was skipped). */
async function runOne(ctx: CheckContext, id: string, timeoutMs: number, report: (r: CheckResult) => void, body: () => Promise<string>): Promise<boolean> {
  const inputType = typeName(ctx.type);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  if (!ctx.container.running && id !== "start" && id !== "readiness") {
    report({
      id,
      inputType,
      outcome: "fail",
      ms: 0,
      detail: `the container is not running (${ctx.container.describeExit()}); its last lines: ${ctx.container.tail(4).join(" | ")}`,
    });
    return false;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      body(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Failure(`no result within ${timeoutMs} ms`)), timeoutMs).unref();
      }),
    ]);
    report({ id, inputType, outcome: "pass", ms: elapsed(), detail });
    return true;
  } catch (err) {
    if (err instanceof Skip || err instanceof Unsupported) {
      report({ id, inputType, outcome: "skip", ms: elapsed(), detail: err.message });
      return true;
    }
    const message = err instanceof Error ? err.message : String(err);
    const exited = ctx.container.running ? "" : ` [the container ${ctx.container.describeExit()}]`;
    report({ id, inputType, outcome: "fail", ms: elapsed(), detail: `${message}${exited}` });
    return false;
  } finally {
    clearTimeout(timer);
  }
}
