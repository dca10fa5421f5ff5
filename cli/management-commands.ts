/**
 * The commands that talk to running services. Each takes its clients and
 * output stream, so tests run them against in-test servers.
 */
import type { Client } from "@connectrpc/connect";
import type { InputType } from "../gen/clipper/common/v1/data_pb.js";
import type { ContainerManagerService } from "../gen/clipper/v1/container_manager_service_pb.js";
import type { ManagementService } from "../gen/clipper/v1/management_service_pb.js";
import type { SelectionPolicy } from "../gen/clipper/v1/resources_pb.js";
import { inputTypeName } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import { describeRuntime, formatTable, indent, type Output, replicaStateName } from "./output.js";
import { describePolicy } from "./policy.js";

export type ManagementClient = Client<typeof ManagementService>;
export type ContainerManagerClient = Client<typeof ContainerManagerService>;

/** Deadline of a quick management call. */
const CALL_TIMEOUT_MS = 15_000;

/** The default wait for readiness assumed when the caller gives none (the server's own default is shorter). */
const REPLICA_WAIT_DEFAULT_S = 300;

/**
 * The client deadline of a call that waits for replicas (deploy, scale): it
 * outlasts the server's wait, so the server's explanation arrives rather than a bare timeout.
 */
export function replicaWaitDeadlineMs(timeoutSeconds: number): number {
  return ((timeoutSeconds || REPLICA_WAIT_DEFAULT_S) + 30) * 1000;
}

export interface CreateAppInput {
  name: string;
  inputType: InputType;
  defaultOutput: string;
  sloMicros: bigint;
  description: string;
}

export async function appCreate(management: ManagementClient, input: CreateAppInput, out: Output): Promise<void> {
  const res = await management.createApplication(input, { timeoutMs: CALL_TIMEOUT_MS });
  const app = res.application;
  out.write(
    `created application ${app?.name ?? input.name} (${inputTypeName(app?.inputType ?? input.inputType)}, ` +
      `slo ${app?.sloMicros ?? input.sloMicros} µs, default output ${JSON.stringify(app?.defaultOutput ?? input.defaultOutput)})\n`,
  );
}

export async function appList(management: ManagementClient, out: Output): Promise<void> {
  const res = await management.listApplications({}, { timeoutMs: CALL_TIMEOUT_MS });
  if (res.applications.length === 0) {
    out.write("no applications\n");
    return;
  }
  out.write(
    formatTable(
      ["NAME", "INPUT", "SLO_MICROS", "DEFAULT_OUTPUT", "MODELS"],
      res.applications.map((a) => [a.name, inputTypeName(a.inputType), String(a.sloMicros), a.defaultOutput, a.linkedModels.join(",") || "-"]),
    ),
  );
}

export async function appDelete(management: ManagementClient, name: string, out: Output): Promise<void> {
  await management.deleteApplication({ name }, { timeoutMs: CALL_TIMEOUT_MS });
  out.write(`deleted application ${name}\n`);
}

export interface AppSettings {
  name: string;
  defaultOutput?: string;
  sloMicros?: bigint;
  cacheEnabled?: boolean;
  defaultOnOverload?: boolean;
}

export async function appUpdate(management: ManagementClient, settings: AppSettings, out: Output): Promise<void> {
  const res = await management.updateApplication(settings, { timeoutMs: CALL_TIMEOUT_MS });
  const app = res.application;
  out.write(
    `updated application ${settings.name}: slo ${app?.sloMicros ?? 0n} µs, default output ${JSON.stringify(app?.defaultOutput ?? "")}, ` +
      `cache ${app?.cacheEnabled ? "on" : "off"}, default on overload ${app?.defaultOnOverload ? "on" : "off"}\n`,
  );
}

/** Replaces the application's selection policy; routers pick it up from the registry's watch. */
export async function appPolicy(management: ManagementClient, name: string, policy: SelectionPolicy, out: Output): Promise<void> {
  const res = await management.updateApplication({ name, policy }, { timeoutMs: CALL_TIMEOUT_MS });
  out.write(`application ${name} now selects models by ${describePolicy(res.application?.policy)}\n`);
}

export async function link(management: ManagementClient, application: string, modelName: string, out: Output): Promise<void> {
  const res = await management.linkModel({ application, modelName }, { timeoutMs: CALL_TIMEOUT_MS });
  out.write(`linked model ${modelName} to application ${application} (models: ${res.application?.linkedModels.join(",") || modelName})\n`);
}

export async function unlink(management: ManagementClient, application: string, modelName: string, out: Output): Promise<void> {
  await management.unlinkModel({ application, modelName }, { timeoutMs: CALL_TIMEOUT_MS });
  out.write(`unlinked model ${modelName} from application ${application}\n`);
}

export async function modelList(management: ManagementClient, out: Output, name = ""): Promise<void> {
  const res = await management.listModels({ name }, { timeoutMs: CALL_TIMEOUT_MS });
  if (res.models.length === 0) {
    out.write(name === "" ? "no models\n" : `no versions of model ${name}\n`);
    return;
  }
  const current = new Map(res.currentVersions.map((c) => [c.modelName, c.version]));
  out.write(
    formatTable(
      ["NAME", "VERSION", "CURRENT", "INPUT", "REPLICAS", "BATCH", "RUNTIME"],
      res.models.map((m) => [
        m.name,
        m.version,
        current.get(m.name) === m.version ? "*" : "",
        inputTypeName(m.inputType),
        String(m.desiredReplicas),
        m.maxBatchSize === 0 ? "-" : String(m.maxBatchSize),
        describeRuntime(m.runtime),
      ]),
    ),
  );
}

export async function modelSetVersion(management: ManagementClient, name: string, version: string, out: Output): Promise<void> {
  const res = await management.setModelVersion({ name, version }, { timeoutMs: CALL_TIMEOUT_MS });
  const was = res.previousVersion === "" ? "" : ` (was ${res.previousVersion})`;
  out.write(`model ${name}: current version is now ${version}${was}\n`);
}

export interface BatchingSettings {
  name: string;
  version: string;
  maxBatchSize?: number;
  batching: { maxWaitMicros?: number; maxInFlightPerReplica: number; fixedSize: boolean; maxQueueLength: number };
}

/** Replaces a version's batching knobs; the router applies them without a restart. */
export async function modelBatching(management: ManagementClient, settings: BatchingSettings, out: Output): Promise<void> {
  const res = await management.updateModel(settings, { timeoutMs: CALL_TIMEOUT_MS });
  const m = res.model;
  const b = m?.batching;
  const wait = b?.maxWaitMicros === undefined ? "auto" : `${b.maxWaitMicros} µs`;
  out.write(
    `model ${settings.name}:${settings.version}: max batch ${m?.maxBatchSize || "unlimited"}, max wait ${wait}, ` +
      `in flight per replica ${b?.maxInFlightPerReplica || "default"}, queue ${b?.maxQueueLength || "default"}${b?.fixedSize ? ", fixed size" : ""}\n`,
  );
}

export interface ScaleInput {
  name: string;
  /** Empty: the current version. */
  version: string;
  replicas: number;
  timeoutSeconds: number;
}

export async function modelScale(containerManager: ContainerManagerClient, input: ScaleInput, out: Output): Promise<void> {
  const res = await containerManager.scaleModel(input, { timeoutMs: replicaWaitDeadlineMs(input.timeoutSeconds) });
  const ready = res.replicas.filter((r) => replicaStateName(r.state) === "ready").length;
  const which = input.version === "" ? input.name : `${input.name}:${input.version}`;
  out.write(`scaled ${which} to ${input.replicas} replicas (${ready} ready)\n`);
  for (const r of res.replicas) out.write(`  ${r.id}  ${replicaStateName(r.state)}  ${r.endpoint}\n`);
}

export async function modelLogs(
  containerManager: ContainerManagerClient,
  input: { modelName: string; modelVersion: string; tailLines: number },
  out: Output,
): Promise<void> {
  const res = await containerManager.getLogs(input, { timeoutMs: CALL_TIMEOUT_MS });
  if (res.logs.length === 0) {
    out.write(`no logs for model ${input.modelName}\n`);
    return;
  }
  const headers = res.logs.length > 1;
  for (const log of res.logs) {
    if (headers) out.write(`==> replica ${log.replicaId} <==\n`);
    for (const line of log.lines) out.write(`${line}\n`);
  }
}

export interface PredictInput {
  /** host:port of the gateway's REST endpoint. */
  gateway: string;
  application: string;
  /** The parsed JSON input (or list of inputs with `batch`). */
  input: unknown;
  batch: boolean;
  version: string;
}

/** POSTs to the gateway's REST endpoint and prints its JSON answer as received. */
export async function predict(fetchFn: typeof fetch, input: PredictInput, out: Output): Promise<void> {
  const url = `http://${input.gateway}/${encodeURIComponent(input.application)}/predict`;
  const body: Record<string, unknown> = input.batch ? { input_batch: input.input } : { input: input.input };
  if (input.version !== "") body.version = input.version;
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new CliError(`cannot reach the gateway at ${input.gateway} (${cause}); is \`clipper up\` running?`);
  }
  const text = (await res.text()).trim();
  if (!res.ok) {
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
      const field = parsed.error ?? parsed.message;
      if (typeof field === "string") message = field;
    } catch {
      // Not JSON: the body itself is the message.
    }
    throw new CliError(`gateway answered ${res.status}: ${message || res.statusText}`);
  }
  out.write(`${text}\n`);
}

/** The registry's view of what is deployed: applications, models, replicas. */
export async function deploymentStatus(management: ManagementClient, out: Output): Promise<void> {
  const [apps, models, replicas] = await Promise.all([
    management.listApplications({}, { timeoutMs: CALL_TIMEOUT_MS }),
    management.listModels({}, { timeoutMs: CALL_TIMEOUT_MS }),
    management.listReplicas({}, { timeoutMs: CALL_TIMEOUT_MS }),
  ]);
  out.write("\napplications:\n");
  if (apps.applications.length === 0) out.write("  none\n");
  else
    out.write(
      indent(
        formatTable(
          ["NAME", "INPUT", "SLO_MICROS", "MODELS"],
          apps.applications.map((a) => [a.name, inputTypeName(a.inputType), String(a.sloMicros), a.linkedModels.join(",") || "-"]),
        ),
      ),
    );
  out.write("\nmodels:\n");
  const current = new Map(models.currentVersions.map((c) => [c.modelName, c.version]));
  const ready = new Map<string, number>();
  for (const set of replicas.replicaSets) {
    ready.set(`${set.modelName}:${set.modelVersion}`, set.replicas.filter((r) => replicaStateName(r.state) === "ready").length);
  }
  if (models.models.length === 0) out.write("  none\n");
  else
    out.write(
      indent(
        formatTable(
          ["NAME", "VERSION", "CURRENT", "READY/DESIRED", "RUNTIME"],
          models.models.map((m) => [
            m.name,
            m.version,
            current.get(m.name) === m.version ? "*" : "",
            `${ready.get(`${m.name}:${m.version}`) ?? 0}/${m.desiredReplicas}`,
            describeRuntime(m.runtime),
          ]),
        ),
      ),
    );
  out.write("\nreplicas:\n");
  const rows = replicas.replicaSets.flatMap((set) =>
    // Only a message's first line fits a table row; `clipper model logs` shows the rest.
    set.replicas.map((r) => [
      `${set.modelName}:${set.modelVersion}`,
      r.id,
      replicaStateName(r.state),
      r.endpoint,
      String(r.restarts),
      r.message.split("\n")[0] ?? "",
    ]),
  );
  if (rows.length === 0) out.write("  none\n");
  else out.write(indent(formatTable(["MODEL", "ID", "STATE", "ENDPOINT", "RESTARTS", "MESSAGE"], rows)));
}
