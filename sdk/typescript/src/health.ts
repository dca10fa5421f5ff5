import type { MessageInitShape } from "@bufbuild/protobuf";
import type { handleServerStreamingCall, handleUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { Code, invalidArgument } from "./errors.js";
import {
  type HealthCheckRequestSchema,
  type HealthCheckResponse_ServingStatus,
  type HealthCheckResponseSchema,
  type HealthListRequestSchema,
  type HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "./gen/grpc/health/v1/health_pb.js";
import { grpcStatus, type Received, UndecodableRequest } from "./grpc-service.js";

type CheckResponse = MessageInitShape<typeof HealthCheckResponseSchema>;

/**
 * grpc.health.v1 for the names a model server serves ("" for the whole
 * server): SERVING until `stop()`, then NOT_SERVING, and open Watch calls end.
 */
export class ServingHealth {
  private serving = true;
  private readonly onStop = new Set<() => void>();

  constructor(private readonly services: readonly string[]) {}

  status(service: string): HealthCheckResponse_ServingStatus {
    if (!this.services.includes(service)) return Status.SERVICE_UNKNOWN;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  /** NOT_SERVING from now on, as a server is while it drains. */
  stop(): void {
    this.serving = false;
    for (const listener of this.onStop) listener();
    this.onStop.clear();
  }

  /** The handlers of grpc.health.v1.Health (Check, List, Watch), for `server.addService`. */
  handlers(): UntypedServiceImplementation {
    const check: handleUnaryCall<Received<typeof HealthCheckRequestSchema>, CheckResponse> = (call, callback) => {
      const req = call.request;
      if (req instanceof UndecodableRequest) return callback(grpcStatus(invalidArgument(req.reason), "Check"));
      const status = this.status(req.service);
      if (status === Status.SERVICE_UNKNOWN) return callback({ code: Code.NotFound as number, details: `unknown service "${req.service}"` });
      callback(null, { status });
    };
    const list: handleUnaryCall<Received<typeof HealthListRequestSchema>, MessageInitShape<typeof HealthListResponseSchema>> = (_call, callback) => {
      callback(null, { statuses: Object.fromEntries(this.services.map((name) => [name, { status: this.status(name) }])) });
    };
    const watch: handleServerStreamingCall<Received<typeof HealthCheckRequestSchema>, CheckResponse> = (call) => {
      const req = call.request;
      if (req instanceof UndecodableRequest) {
        call.emit("error", grpcStatus(invalidArgument(req.reason), "Watch"));
        return;
      }
      call.write({ status: this.status(req.service) });
      if (!this.serving) {
        call.end();
        return;
      }
      const stopped = () => {
        call.write({ status: this.status(req.service) });
        call.end();
      };
      this.onStop.add(stopped);
      call.once("cancelled", () => this.onStop.delete(stopped));
    };
    return { Check: check, List: list, Watch: watch } as UntypedServiceImplementation;
  }
}
