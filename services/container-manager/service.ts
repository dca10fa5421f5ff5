import fs from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { type ContainerManagerService, type DeployModelResponseSchema, DeployStage } from "../../gen/clipper/v1/container_manager_service_pb.js";
import type { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { type Model, type ModelRuntime, type Replica, ReplicaState } from "../../gen/clipper/v1/resources_pb.js";
import type { ConfigView } from "../shared/index.js";
import {
  alreadyExists,
  Code,
  ConnectError,
  failedPrecondition,
  invalidArgument,
  type Logger,
  notFound,
  ON_BEHALF_OF_HEADER,
  unavailable,
  validateName,
  validateVersion,
} from "../shared/index.js";
import type { ArtifactStore } from "./artifact-store.js";
import { validateRuntime } from "./backends/launch.js";
import { formatLogLine, type ReplicaBackend } from "./backends/replica-backend.js";
import { deployDifferences } from "./deploy-differences.js";
import type { PreparedLease, PythonEnvironments } from "./python-environments.js";
import type { Reconciler } from "./reconciler.js";
import { watchRollout } from "./rollout.js";

export interface ContainerManagerServiceDeps {
  registry: Client<typeof ManagementService>;
  /** host:port of the registry, for error messages. */
  registryAddress: string;
  config: { view(): ConfigView; connected(): boolean };
  backend: ReplicaBackend;
  reconciler: Reconciler;
  artifacts: ArtifactStore;
  logger: Logger;
  /** How long DeployModel and ScaleModel wait for readiness when the request says 0. */
  defaultTimeoutMs: number;
  /** The most replicas one model version may ask for. */
  maxReplicas: number;
  /** Resolves once the replica changes seen so far have been reported to the registry (or a retry of them is pending). */
  replicasReported?: () => Promise<void>;
  /** Why the backend cannot launch a runtime here (no java, no Java SDK jar), or undefined; checked at deploy. */
  runtimeUnavailable?: (runtime: ModelRuntime | undefined) => string | undefined;
  /** Builds (or finds) the environment of a closure that records packages before its deploy registers it; unset: no such environments (image backends). */
  pythonEnvironments?: Pick<PythonEnvironments, "prepare">;
}

type DeployProgress = MessageInitShape<typeof DeployModelResponseSchema>;

const REGISTRY_CALL_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_SECONDS = 3600;
const DEFAULT_TAIL_LINES = 200;

/** The ContainerManagerService handlers: validation, registry calls, and waiting on the backend. */
export function createContainerManagerService(deps: ContainerManagerServiceDeps): ServiceImpl<typeof ContainerManagerService> {
  const { backend, registry } = deps;

  /** Registry errors keep their code and message; an unreachable registry is named as such. */
  async function callRegistry<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof ConnectError && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded)) {
        throw unavailable(`${what}: the registry at ${deps.registryAddress} is unreachable (${err.rawMessage})`);
      }
      throw err;
    }
  }
  const opts = { timeoutMs: REGISTRY_CALL_TIMEOUT_MS };
  /**
   * Options of a registry write made for this call's caller: the caller's
   * token goes along (ON_BEHALF_OF_HEADER), and the registry lets this
   * service's own token register, scale or switch a model version only on
   * an admin's behalf.
   */
  const forCaller = (ctx: HandlerContext) => {
    const authorization = ctx.requestHeader.get("authorization");
    return authorization === null ? opts : { ...opts, headers: { [ON_BEHALF_OF_HEADER]: authorization } };
  };

  const timeoutMs = (seconds: number) => {
    if (seconds > MAX_TIMEOUT_SECONDS) throw invalidArgument(`timeout_seconds is ${seconds}; the limit is ${MAX_TIMEOUT_SECONDS}`);
    return seconds > 0 ? seconds * 1000 : deps.defaultTimeoutMs;
  };
  const checkReplicas = (n: number, field: string) => {
    if (n > deps.maxReplicas) throw invalidArgument(`${field} is ${n}; the limit is ${deps.maxReplicas}`);
  };
  const replicasOf = (name: string, version?: string) =>
    backend.replicas().filter((r) => r.modelName === name && (version === undefined || r.modelVersion === version));
  const hint = () =>
    deps.config.connected() ? undefined : `no replica was started: the container-manager is not connected to the registry at ${deps.registryAddress}`;
  const resolveVersion = (name: string, version: string) => {
    if (version !== "") {
      validateVersion(version);
      return version;
    }
    const current = deps.config.view().currentVersions.get(name);
    if (current === undefined) throw notFound(`model "${name}" has no current version; give the version`);
    return current;
  };

  function validateModel(model: Model | undefined): Model {
    if (model === undefined) throw invalidArgument("model is missing");
    validateName("model", model.name);
    validateVersion(model.version);
    if (model.inputType === InputType.UNSPECIFIED || InputType[model.inputType] === undefined) {
      throw invalidArgument("model.input_type must be one of bytes, ints, floats, doubles, strings");
    }
    validateRuntime(model.runtime);
    checkReplicas(model.desiredReplicas, "model.desired_replicas");
    const kind = model.runtime?.kind;
    if (kind?.case === "pythonClosure" && !deps.artifacts.has(kind.value.artifactDigest)) {
      throw failedPrecondition(`artifact ${kind.value.artifactDigest} is not in the artifact store; upload it with UploadArtifact first`);
    }
    if (kind?.case === "nodeModule" && !fs.existsSync(kind.value.modulePath)) {
      throw failedPrecondition(`model.runtime.node_module.module_path ${kind.value.modulePath} does not exist on the container-manager's machine`);
    }
    if (kind?.case === "javaClass" && !deps.artifacts.has(kind.value.jarDigest)) {
      throw failedPrecondition(
        `model.runtime.java_class.jar_digest: artifact ${kind.value.jarDigest} is not in the artifact store; upload the jar with UploadArtifact first`,
      );
    }
    if (kind?.case === "rFunction" && !deps.artifacts.has(kind.value.artifactDigest)) {
      throw failedPrecondition(
        `model.runtime.r_function.artifact_digest: artifact ${kind.value.artifactDigest} is not in the artifact store; upload it with UploadArtifact first`,
      );
    }
    const unavailable = deps.runtimeUnavailable?.(model.runtime);
    if (unavailable !== undefined) throw failedPrecondition(`model.runtime: ${unavailable}`);
    return model;
  }

  /** Registers a version; redeploying an identical version (e.g. after a failed start) retries it. */
  async function register(model: Model, desired: number, ctx: HandlerContext): Promise<string> {
    const label = `${model.name}:${model.version}`;
    try {
      await callRegistry(`registering ${label}`, () =>
        registry.createModel({ model: { ...model, desiredReplicas: desired }, setCurrent: false }, forCaller(ctx)),
      );
      return `registered model ${label}`;
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.AlreadyExists)) throw err;
    }
    const existing = (await callRegistry(`reading ${label}`, () => registry.getModel({ name: model.name, version: model.version }, opts))).model;
    const differences = existing === undefined ? ["it could not be read back"] : deployDifferences(existing, model);
    if (differences.length > 0) {
      throw alreadyExists(
        `model ${label} is already registered with a different runtime or input type (${differences.join("; ")}); deploy it as a new version`,
      );
    }
    await callRegistry(`updating ${label}`, () => registry.updateModel({ name: model.name, version: model.version, desiredReplicas: desired }, forCaller(ctx)));
    await deps.reconciler.retryFailed(model.name, model.version);
    return `model ${label} was already registered; starting its replicas again`;
  }

  /**
   * Waits for the Python environment of a closure that records packages
   * (built now, or cached), yielding what the builder reports; a package that
   * cannot be installed fails the deploy here, before anything is registered.
   */
  async function* prepareEnvironment(model: Model, desired: number): AsyncGenerator<DeployProgress, PreparedLease | undefined> {
    const kind = model.runtime?.kind;
    if (deps.pythonEnvironments === undefined || kind?.case !== "pythonClosure" || kind.value.packages.length === 0) return undefined;
    const messages: string[] = [];
    let wake = () => {};
    const preparing = deps.pythonEnvironments.prepare(kind.value, (message) => {
      // Only the latest few matter to a caller watching the deploy.
      if (messages.push(message) > 8) messages.shift();
      wake();
    });
    let outcome: { lease: PreparedLease } | { error: unknown } | undefined;
    preparing.then(
      (lease) => {
        outcome = { lease };
        wake();
      },
      (error: unknown) => {
        outcome = { error };
        wake();
      },
    );
    let handedOver = false;
    try {
      for (;;) {
        for (let message = messages.shift(); message !== undefined; message = messages.shift()) {
          yield { stage: DeployStage.STARTING, message, readyReplicas: 0, desiredReplicas: desired };
        }
        if (outcome !== undefined) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if ("error" in outcome) throw outcome.error;
      handedOver = true;
      return outcome.lease;
    } finally {
      // The caller went away during the build: it goes on (and is cached), but holds nothing from eviction.
      if (!handedOver)
        preparing.then(
          (lease) => lease.release(),
          () => {},
        );
    }
  }

  /** Registers the version and waits for its replicas, yielding their progress. */
  async function* registerAndRollOut(
    model: Model,
    desired: number,
    waitMs: number,
    setCurrent: boolean,
    ctx: HandlerContext,
  ): AsyncGenerator<DeployProgress, void> {
    const message = await register(model, desired, ctx);
    deps.logger.info({ model: model.name, version: model.version, desired }, message);
    yield { stage: DeployStage.REGISTERED, message, readyReplicas: 0, desiredReplicas: desired };
    let replicas: Replica[] = [];
    const rollout = watchRollout({ backend, modelName: model.name, modelVersion: model.version, desired, timeoutMs: waitMs, signal: ctx.signal, hint });
    for (let step = await rollout.next(); ; step = await rollout.next()) {
      if (step.done) {
        replicas = step.value;
        break;
      }
      const p = step.value;
      yield {
        stage: DeployStage.STARTING,
        message: `${p.ready} of ${p.desired} replicas ready`,
        readyReplicas: p.ready,
        desiredReplicas: desired,
        replicas: p.replicas,
      };
    }
    if (setCurrent) {
      // The routers learn of replicas from the registry: a version made current before the registry lists its
      // replicas READY would get queries no router can send anywhere yet (seen on Kubernetes: current moved
      // with 1 of 2, or none, reported READY).
      await deps.replicasReported?.();
      await callRegistry(`making ${model.version} current`, () => registry.setModelVersion({ name: model.name, version: model.version }, forCaller(ctx)));
    }
    yield { stage: DeployStage.READY, message: `model ${model.name}:${model.version} is ready`, readyReplicas: desired, desiredReplicas: desired, replicas };
  }

  return {
    async uploadArtifact(requests) {
      const stored = await deps.artifacts.put(requests);
      deps.logger.info({ digest: stored.digest, sizeBytes: String(stored.sizeBytes) }, "artifact stored");
      return stored;
    },

    async *deployModel(req, ctx) {
      const model = validateModel(req.model);
      const waitMs = timeoutMs(req.timeoutSeconds);
      const desired = model.desiredReplicas > 0 ? model.desiredReplicas : 1;
      const lease = yield* prepareEnvironment(model, desired);
      try {
        yield* registerAndRollOut(model, desired, waitMs, req.setCurrent, ctx);
      } finally {
        // Registered (or failed): from now on the model's own replicas keep its environment from eviction.
        lease?.release();
      }
    },

    async scaleModel(req, ctx) {
      validateName("model", req.name);
      checkReplicas(req.replicas, "replicas");
      const waitMs = timeoutMs(req.timeoutSeconds);
      const version = resolveVersion(req.name, req.version);
      await callRegistry(`scaling ${req.name}:${version}`, () =>
        registry.updateModel({ name: req.name, version, desiredReplicas: req.replicas }, forCaller(ctx)),
      );
      if (req.replicas > 0) await deps.reconciler.retryFailed(req.name, version);
      const rollout = watchRollout({ backend, modelName: req.name, modelVersion: version, desired: req.replicas, timeoutMs: waitMs, signal: ctx.signal, hint });
      for (let step = await rollout.next(); ; step = await rollout.next()) {
        if (step.done) return { replicas: step.value };
      }
    },

    async stopModel(req, ctx) {
      validateName("model", req.name);
      req.versions.forEach((version, i) => {
        try {
          validateVersion(version);
        } catch (err) {
          // The shared check speaks of "model version"; name the list entry the caller sent.
          throw invalidArgument(`versions[${i}]: ${err instanceof ConnectError ? err.rawMessage : String(err)}`);
        }
      });
      let versions = req.versions;
      if (versions.length === 0) {
        const known = new Set(replicasOf(req.name).map((r) => r.modelVersion));
        for (const m of deps.config.view().models.values()) if (m.name === req.name) known.add(m.version);
        versions = [...known];
      }
      if (versions.length === 0) throw notFound(`model "${req.name}" has no versions and no replicas`);
      // Counted before the registry change, which makes the reconciler start stopping them too.
      const targets = backend.replicas().filter((r) => r.modelName === req.name && versions.includes(r.modelVersion) && r.state !== ReplicaState.STOPPING);
      for (const version of versions) {
        await callRegistry(`stopping ${req.name}:${version}`, () =>
          registry.updateModel({ name: req.name, version, desiredReplicas: 0 }, forCaller(ctx)).catch((err: unknown) => {
            // Replicas of a version the registry no longer knows are stopped all the same.
            if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
          }),
        );
      }
      await Promise.all(targets.map((r) => backend.stop(r.id)));
      return { stoppedReplicas: targets.length };
    },

    listModelReplicas(req) {
      return {
        replicas: backend
          .replicas()
          .filter((r) => (req.modelName === "" || r.modelName === req.modelName) && (req.modelVersion === "" || r.modelVersion === req.modelVersion)),
      };
    },

    getLogs(req) {
      validateName("model", req.modelName);
      const version = req.modelVersion !== "" ? resolveVersion(req.modelName, req.modelVersion) : deps.config.view().currentVersions.get(req.modelName);
      let replicas = replicasOf(req.modelName, version);
      if (req.replicaId !== "") {
        replicas = replicas.filter((r) => r.id === req.replicaId);
        if (replicas.length === 0)
          throw notFound(`model ${req.modelName} has no replica "${req.replicaId}"${version !== undefined ? ` in version ${version}` : ""}`);
      }
      const tail = req.tailLines > 0 ? req.tailLines : DEFAULT_TAIL_LINES;
      return {
        logs: replicas.map((r) => ({ replicaId: r.id, lines: (backend.logs(r.id, tail) ?? []).map(formatLogLine) })),
      };
    },
  };
}
