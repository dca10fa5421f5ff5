/**
 * Health checks of the services `clipper up` starts: GET <path> answering 2xx
 * (the gateway), or grpc.health.v1 Check("") answering SERVING (the others),
 * each bounded to a second. The gRPC check is one HTTP/2 request made with
 * node:http2, not grpc-js: the supervisor that runs it all day stays small.
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";

export type HealthProbe = { kind: "grpc" } | { kind: "http"; path: string };

export interface Probe {
  check(): Promise<boolean>;
  close(): void;
}

const CHECK_TIMEOUT_MS = 1000;

/** One health check per call, each bounded to a second. */
export function createProbe(health: HealthProbe, address: string): Probe {
  if (health.kind === "http") {
    const url = `http://${address}${health.path}`;
    return {
      check: async () => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
          await res.body?.cancel();
          return res.ok;
        } catch {
          return false;
        }
      },
      close: () => undefined,
    };
  }
  let session: http2.ClientHttp2Session | undefined;
  const connect = () => {
    if (session === undefined || session.closed || session.destroyed) {
      const s = http2.connect(`http://${address}`);
      s.on("error", () => s.destroy());
      s.on("close", () => {
        if (session === s) session = undefined;
      });
      s.unref();
      session = s;
    }
    return session;
  };
  return {
    check: () => grpcHealthCheck(connect()),
    close: () => session?.close(),
  };
}

/** grpc.health.v1.Health/Check("") on the session: true when the answer is SERVING with grpc-status 0. */
function grpcHealthCheck(session: http2.ClientHttp2Session): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => {
      done(false);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, CHECK_TIMEOUT_MS);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Check",
        "content-type": "application/grpc",
        te: "trailers",
      });
    } catch {
      clearTimeout(timer);
      resolve(false);
      return;
    }
    const body = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));
    // One length-prefixed message: no compression flag, then the length, big-endian.
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const chunks: Buffer[] = [];
    let status: string | undefined;
    stream.on("response", (headers) => {
      const s = headers["grpc-status"];
      if (s !== undefined) status = String(s);
    });
    stream.on("trailers", (trailers) => {
      const s = trailers["grpc-status"];
      if (s !== undefined) status = String(s);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => done(false));
    stream.on("close", () => {
      const data = Buffer.concat(chunks);
      if (status !== "0" || data.length < 5) return done(false);
      const length = data.readUInt32BE(1);
      try {
        const res = fromBinary(HealthCheckResponseSchema, data.subarray(5, 5 + length));
        done(res.status === HealthCheckResponse_ServingStatus.SERVING);
      } catch {
        done(false);
      }
    });
    stream.end(frame);
  });
}
