// For tests: a registry that serves one configuration snapshot on WatchConfig
// and keeps the stream open until the caller goes away.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ManagementService, type WatchConfigResponseSchema } from "../../../gen/clipper/v1/management_service_pb.js";
import type { ConfigSnapshotSchema } from "../../../gen/clipper/v1/resources_pb.js";
import { type RunningGrpcServer, registration, startGrpcServer } from "../grpc-server.js";

export function startSnapshotRegistry(snapshot: MessageInitShape<typeof ConfigSnapshotSchema>): Promise<RunningGrpcServer> {
  return startGrpcServer({
    port: 0,
    services: [
      registration(ManagementService, {
        async *watchConfig(_req, ctx): AsyncIterable<MessageInitShape<typeof WatchConfigResponseSchema>> {
          yield { event: { case: "snapshot", value: snapshot } };
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
        },
      }),
    ],
  });
}
