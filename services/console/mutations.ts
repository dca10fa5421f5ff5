/**
 * What the page asks on the caller's behalf: changes, as calls to the
 * registry's ManagementService, and replicas' log lines from the
 * container-manager, each made with the caller's own token: the services
 * decide who may (a read-only token's refusal comes back as their
 * PERMISSION_DENIED). Bodies are checked here first, so a malformed one gets
 * a 400 naming the field.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import type { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import type { SelectionPolicy, SelectionPolicySchema } from "../../gen/clipper/v1/resources_pb.js";
import { type ConfigView, parseInputType } from "../shared/index.js";
import type { PolicyJson, ReplicaLogsJson } from "./console-api.js";

/** A request the console refuses itself (400), before asking the registry. */
export class BadRequest extends Error {
  override name = "BadRequest";
}

type Body = Record<string, unknown>;

function object(body: unknown): Body {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new BadRequest("the body must be a JSON object");
  return body as Body;
}

function text(body: Body, field: string, required = true): string | undefined {
  const v = body[field];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || (required && v === "")) throw new BadRequest(`"${field}" must be a non-empty string`);
  return v;
}

function integer(body: Body, field: string, min: number, max: number, required = true): number | undefined {
  const v = body[field];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new BadRequest(`"${field}" must be an integer from ${min} to ${max}`);
  return v;
}

function real(body: Body, field: string, min: number, max: number): number {
  const v = body[field];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) throw new BadRequest(`"${field}" must be a number from ${min} to ${max}`);
  return v;
}

const UINT32 = 4_294_967_295;

export function parsePolicy(raw: unknown): PolicyJson {
  const body = object(raw);
  switch (body.kind) {
    case "single":
      return { kind: "single" };
    case "thompson":
      return { kind: "thompson" };
    case "exp3":
      return { kind: "exp3", gamma: real(body, "gamma", 0, 1) };
    case "exp4":
      return { kind: "exp4", eta: real(body, "eta", 0, 1000) };
    case "epsilon_greedy":
      return { kind: "epsilon_greedy", epsilon: real(body, "epsilon", 0, 1) };
    case "split": {
      const weights = object(body.weights);
      const out: Record<string, number> = {};
      for (const [key, value] of Object.entries(weights)) {
        if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new BadRequest(`"weights.${key}" must be a number of at least 0`);
        out[key] = value;
      }
      if (Object.keys(out).length === 0) throw new BadRequest('"weights" must name at least one model');
      return { kind: "split", weights: out };
    }
    default:
      throw new BadRequest('"kind" must be one of single, split, exp3, exp4, epsilon_greedy, thompson');
  }
}

/** The policy message, keeping the loss the application already has (the page does not edit it). */
function policyMessage(policy: PolicyJson, current: SelectionPolicy | undefined): MessageInitShape<typeof SelectionPolicySchema> {
  const loss = { loss: current?.loss ?? 0, lossScale: current?.lossScale ?? 0 };
  switch (policy.kind) {
    case "single":
      return { ...loss, kind: { case: "single", value: {} } };
    case "thompson":
      return { ...loss, kind: { case: "thompson", value: {} } };
    case "exp3":
      return { ...loss, kind: { case: "exp3", value: { gamma: policy.gamma } } };
    case "exp4":
      return { ...loss, kind: { case: "exp4", value: { eta: policy.eta } } };
    case "epsilon_greedy":
      return { ...loss, kind: { case: "epsilonGreedy", value: { epsilon: policy.epsilon } } };
    case "split":
      return { ...loss, kind: { case: "split", value: { weights: policy.weights } } };
  }
}

export interface OperatorCallsOptions {
  /** A client that sends no token of the console's own: the caller's goes with each call. */
  registry: Client<typeof ManagementService>;
  /** The latest configuration, to keep what a partial change leaves alone. */
  view: () => ConfigView;
  /** Also without a token of the console's own: reading logs is the caller's right, not the console's. */
  containerManager: Client<typeof ContainerManagerService>;
}

/** Most log lines one request returns per replica (the container-manager keeps a bounded tail too). */
export const MAX_LOG_LINES = 500;

/** Each call takes the caller's `authorization` header value (or none) and the parsed JSON body. */
export class OperatorCalls {
  constructor(private readonly options: OperatorCallsOptions) {}

  private headers(authorization: string | undefined): { headers: Record<string, string> } {
    return { headers: authorization === undefined ? {} : { authorization } };
  }

  /** The last lines of a version's replicas (or one of them), asked with the caller's token. */
  async replicaLogs(authorization: string | undefined, name: string, version: string, replicaId: string, lines: number): Promise<ReplicaLogsJson> {
    const tailLines = Math.min(Math.max(1, lines), MAX_LOG_LINES);
    const { logs } = await this.options.containerManager.getLogs({ modelName: name, modelVersion: version, replicaId, tailLines }, this.headers(authorization));
    return { logs: logs.map((l) => ({ replicaId: l.replicaId, lines: l.lines.slice(-tailLines) })) };
  }

  async createApplication(authorization: string | undefined, raw: unknown): Promise<void> {
    const body = object(raw);
    const inputTypeRaw = text(body, "inputType") ?? "";
    let inputType: ReturnType<typeof parseInputType>;
    try {
      inputType = parseInputType(inputTypeRaw);
    } catch (err) {
      throw new BadRequest(`"inputType": ${(err as Error).message}`);
    }
    const policy = body.policy === undefined ? undefined : parsePolicy(body.policy);
    await this.options.registry.createApplication(
      {
        name: text(body, "name") ?? "",
        inputType,
        defaultOutput: text(body, "defaultOutput", false) ?? "",
        sloMicros: BigInt(integer(body, "sloMicros", 1, 3_600_000_000) ?? 0),
        description: text(body, "description", false) ?? "",
        ...(policy === undefined ? {} : { policy: policyMessage(policy, undefined) }),
      },
      this.headers(authorization),
    );
  }

  async deleteApplication(authorization: string | undefined, name: string): Promise<void> {
    await this.options.registry.deleteApplication({ name }, this.headers(authorization));
  }

  async link(authorization: string | undefined, application: string, raw: unknown): Promise<void> {
    const modelName = text(object(raw), "model") ?? "";
    await this.options.registry.linkModel({ application, modelName }, this.headers(authorization));
  }

  async unlink(authorization: string | undefined, application: string, modelName: string): Promise<void> {
    await this.options.registry.unlinkModel({ application, modelName }, this.headers(authorization));
  }

  async setPolicy(authorization: string | undefined, application: string, raw: unknown): Promise<void> {
    const policy = parsePolicy(raw);
    const current = this.options.view().applications.get(application)?.policy;
    await this.options.registry.updateApplication({ name: application, policy: policyMessage(policy, current) }, this.headers(authorization));
  }

  async setCurrentVersion(authorization: string | undefined, name: string, raw: unknown): Promise<void> {
    const version = text(object(raw), "version") ?? "";
    await this.options.registry.setModelVersion({ name, version }, this.headers(authorization));
  }

  async scale(authorization: string | undefined, name: string, version: string, raw: unknown): Promise<void> {
    const desiredReplicas = integer(object(raw), "replicas", 0, 100_000) ?? 0;
    await this.options.registry.updateModel({ name, version, desiredReplicas }, this.headers(authorization));
  }

  /** Replaces the batching knobs; maxBatchSize is the model's own field beside them. */
  async setBatching(authorization: string | undefined, name: string, version: string, raw: unknown): Promise<void> {
    const body = object(raw);
    const maxBatchSize = integer(body, "maxBatchSize", 0, UINT32, false);
    const wait = body.maxWaitMicros;
    if (wait !== null && wait !== undefined) integer(body, "maxWaitMicros", 0, UINT32);
    const fixedSize = body.fixedSize;
    if (fixedSize !== undefined && typeof fixedSize !== "boolean") throw new BadRequest('"fixedSize" must be true or false');
    await this.options.registry.updateModel(
      {
        name,
        version,
        ...(maxBatchSize === undefined ? {} : { maxBatchSize }),
        batching: {
          ...(typeof wait === "number" ? { maxWaitMicros: wait } : {}),
          maxInFlightPerReplica: integer(body, "maxInFlightPerReplica", 0, UINT32, false) ?? 0,
          maxQueueLength: integer(body, "maxQueueLength", 0, UINT32, false) ?? 0,
          fixedSize: fixedSize === true,
        },
      },
      this.headers(authorization),
    );
  }
}
