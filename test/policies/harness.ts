import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { ReplicaState, type SelectionPolicySchema } from "../../gen/clipper/v1/resources_pb.js";
import { createManagementService, MemoryStore, Registry } from "../../services/registry/index.js";
import { type RunningRouter, startRouter } from "../../services/router/index.js";
import {
  createGrpcTransport,
  createLogger,
  type GrpcTransport,
  prom,
  type RunningGrpcServer,
  registration,
  startGrpcServer,
} from "../../services/shared/index.js";

const logger = createLogger({ service: "test", level: "silent" });

/**
 * Inputs are strings "<n>|<label>": fake classifiers read the true label from
 * the input, so how often each is right is exact and deterministic.
 */
export const inputFor = (n: number, classes = 3) => `${n}|${n % classes}`;
export const labelOf = (input: string) => input.split("|")[1] ?? "";

/** How a fake model answers one input (undefined: never answers, a dead member). */
export type Answer = (input: string) => string | undefined;

export const alwaysRight: Answer = (input) => labelOf(input);
/** Right for 3 inputs in 10 (by the input's number), wrong otherwise. */
export const right30: Answer = (input) => {
  const n = Number(input.split("|")[0]);
  const label = Number(labelOf(input));
  return (n * 7) % 10 < 3 ? String(label) : String((label + 1) % 3);
};

/** A ModelService replica answering with `answer` after `delayMs` per batch. */
export async function startFakeModel(answer: Answer, delayMs = 0): Promise<RunningGrpcServer> {
  return startGrpcServer({
    port: 0,
    services: [
      registration(ModelService, {
        async predict(req, ctx) {
          const strings = req.inputs?.strings ?? [];
          const outputs = strings.map(answer);
          if (delayMs > 0 || outputs.some((o) => o === undefined)) {
            // A dead member waits until the router gives up on it.
            await new Promise<void>((resolve) => {
              const timer = outputs.some((o) => o === undefined) ? undefined : setTimeout(resolve, delayMs);
              ctx.signal.addEventListener("abort", () => {
                clearTimeout(timer);
                resolve();
              });
            });
          }
          return { outputs: outputs.map((o) => ({ result: { case: "value" as const, value: o ?? "" } })) };
        },
      }),
    ],
  });
}

/** The real registry (in memory) and real routers over real gRPC, with fake model replicas. */
export class PolicyHarness {
  private registryServer: RunningGrpcServer | undefined;
  private registryInstance: Registry | undefined;
  private readonly routers: RunningRouter[] = [];
  private readonly servers: RunningGrpcServer[] = [];
  private readonly transports: GrpcTransport[] = [];

  async start(): Promise<this> {
    this.registryInstance = await Registry.open({ store: new MemoryStore() });
    this.registryServer = await startGrpcServer({ port: 0, services: [registration(ManagementService, createManagementService(this.registryInstance))] });
    return this;
  }

  get registryAddress(): string {
    return (this.registryServer as RunningGrpcServer).address;
  }

  management() {
    return createClient(ManagementService, this.transport(this.registryAddress));
  }

  async startRouter(seed: number) {
    const router = await startRouter({
      host: "127.0.0.1",
      port: 0,
      registry: this.registryAddress,
      limits: { maxBatch: 1000, maxInputSize: 1000 },
      maxWaitMs: 10_000,
      logger,
      metrics: new prom.Registry(),
      selectionSeed: seed,
    });
    this.routers.push(router);
    return { router, client: createClient(QueryService, this.transport(router.address)) };
  }

  async closeRouter(router: RunningRouter): Promise<void> {
    this.routers.splice(this.routers.indexOf(router), 1);
    await router.close();
  }

  /** Registers a model version served by a fake replica answering with `answer`, reported READY. */
  async model(name: string, version: string, answer: Answer, delayMs = 0): Promise<void> {
    const server = await startFakeModel(answer, delayMs);
    this.servers.push(server);
    const m = this.management();
    await m.createModel({ model: { name, version, inputType: InputType.STRINGS, runtime: { kind: { case: "command", value: { argv: ["true"] } } } } });
    await m.reportReplicas({
      replicaSet: { modelName: name, modelVersion: version, replicas: [{ id: `${name}-${version}`, endpoint: server.address, state: ReplicaState.READY }] },
    });
  }

  async app(name: string, models: string[], policy: MessageInitShape<typeof SelectionPolicySchema>, sloMicros = 5_000_000n): Promise<void> {
    const m = this.management();
    await m.createApplication({ name, inputType: InputType.STRINGS, defaultOutput: "default", sloMicros, policy });
    for (const model of models) await m.linkModel({ application: name, modelName: model });
  }

  /** Waits until `client`'s router answers the application with a model (it follows the registry's watch). */
  async ready(client: ReturnType<typeof createClient<typeof QueryService>>, application: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const [r] = (await client.query({ application, inputs: { type: InputType.STRINGS, strings: ["warm|0"] } }).catch(() => ({ results: [] }))).results;
      if (r !== undefined && !r.default) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`router never answered ${application}`);
  }

  async policyState(application: string, uid = ""): Promise<{ version: bigint; state: unknown }> {
    const r = await this.management().getPolicyState({ application, uid });
    return { version: r.version, state: r.state.byteLength === 0 ? undefined : (JSON.parse(new TextDecoder().decode(r.state)) as unknown) };
  }

  async close(): Promise<void> {
    for (const t of this.transports.splice(0)) t.close();
    await Promise.all(this.routers.splice(0).map((r) => r.close()));
    await Promise.all(this.servers.splice(0).map((s) => s.close(100)));
    await this.registryServer?.close(100);
    await this.registryInstance?.close();
  }

  private transport(address: string): GrpcTransport {
    const t = createGrpcTransport({ address });
    this.transports.push(t);
    return t;
  }
}

export const strings = (...s: string[]) => ({ type: InputType.STRINGS, strings: s });
