import { type Client, createClient } from "@connectrpc/connect";
import type { Inputs, Output } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelService } from "../../gen/clipper/model/v1/model_service_pb.js";
import { type ConfigView, createGrpcTransport, type GrpcTransport } from "../shared/index.js";

/** What the query path needs from a model replica: one batch in, one output per input out. */
export interface ModelClient {
  predict(inputs: Inputs, batchId: bigint, options: { signal: AbortSignal; timeoutMs: number }): Promise<Output[]>;
}

export interface ModelClientFactory {
  /** The client for a replica's host:port. */
  clientFor(endpoint: string): ModelClient;
}

/**
 * One persistent grpc-js channel per replica endpoint, created on first use
 * and closed when the endpoint leaves the configuration (`retain`).
 */
export class ReplicaClientPool implements ModelClientFactory {
  private readonly clients = new Map<string, { transport: GrpcTransport; client: ModelClient }>();

  constructor(private readonly connect: (address: string) => GrpcTransport = (address) => createGrpcTransport({ address })) {}

  clientFor(endpoint: string): ModelClient {
    const existing = this.clients.get(endpoint);
    if (existing) return existing.client;
    const transport = this.connect(endpoint);
    const client = modelClient(createClient(ModelService, transport));
    this.clients.set(endpoint, { transport, client });
    return client;
  }

  /** Closes the channels of endpoints not in `endpoints`. */
  retain(endpoints: ReadonlySet<string>): void {
    for (const [endpoint, { transport }] of this.clients) {
      if (endpoints.has(endpoint)) continue;
      transport.close();
      this.clients.delete(endpoint);
    }
  }

  endpoints(): string[] {
    return [...this.clients.keys()];
  }

  close(): void {
    this.retain(new Set());
  }
}

function modelClient(client: Client<typeof ModelService>): ModelClient {
  return {
    async predict(inputs, batchId, { signal, timeoutMs }) {
      const res = await client.predict({ inputs, batchId }, { signal, timeoutMs });
      return res.outputs;
    },
  };
}

/** Every replica endpoint the configuration names, whatever its state. */
export function replicaEndpoints(view: ConfigView): Set<string> {
  const out = new Set<string>();
  for (const set of view.replicaSets.values()) for (const r of set.replicas) if (r.endpoint !== "") out.add(r.endpoint);
  return out;
}
