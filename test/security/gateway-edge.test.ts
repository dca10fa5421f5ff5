// The gateway's public edge with TLS (HTTPS and gRPC over TLS on one port, routed by ALPN),
// per-application keys, and mutual TLS plus a service token towards the router and registry.
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { AppKeys, connectRouter, type RouterLink, type RunningGateway, startGateway } from "../../services/gateway/index.js";
import {
  Code,
  type ConfigWatcher,
  ConnectError,
  clientSecurity,
  createAuthorizer,
  createGrpcTransport,
  createLogger,
  type GrpcTransport,
  generateToken,
  hashToken,
  loadTlsMaterial,
  mutualTlsServerCredentials,
  prom,
  type RunningGrpcServer,
  registration,
  startGrpcServer,
  type TlsMaterial,
  TokenAuthenticator,
  watchConfig,
} from "../../services/shared/index.js";
import { createTestPki, type TestPki } from "../../services/shared/testing/test-pki.js";

const logger = createLogger({ service: "test", level: "silent" });

describe("gateway edge with TLS and application keys", () => {
  let pki: TestPki;
  let tls: TlsMaterial;
  let registry: RunningGrpcServer;
  let router: RunningGrpcServer;
  let gateway: RunningGateway;
  let config: ConfigWatcher;
  let routerLink: RouterLink;
  const transports: GrpcTransport[] = [];
  const appKey = generateToken();
  const serviceToken = generateToken();

  beforeAll(async () => {
    pki = createTestPki();
    const material = loadTlsMaterial(pki.service);
    if (material === undefined) throw new Error("no TLS material");
    tls = material;
    registry = await startGrpcServer({
      port: 0,
      credentials: mutualTlsServerCredentials(tls),
      authorize: createAuthorizer({ authenticator: new TokenAuthenticator([{ name: "gateway", role: "read-only", hash: hashToken(serviceToken) }]) }),
      services: [
        registration(ManagementService, {
          async *watchConfig(_req, ctx) {
            const app = (name: string) => ({ name, inputType: InputType.DOUBLES, defaultOutput: "0", sloMicros: 1_000_000n });
            yield { event: { case: "snapshot" as const, value: { revision: 1n, applications: [app("secured"), app("open")] } } };
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          },
        }),
      ],
    });
    router = await startGrpcServer({
      port: 0,
      credentials: mutualTlsServerCredentials(tls),
      services: [registration(QueryService, { query: (req) => ({ results: req.inputs?.lengths.map(() => ({ queryId: 1n, output: "42" })) ?? [] }) })],
    });
    config = watchConfig({ registry: registry.address, logger, security: clientSecurity({ tls, token: serviceToken }) });
    routerLink = connectRouter({ address: router.address, logger, security: clientSecurity({ tls }) });
    gateway = await startGateway({
      host: "127.0.0.1",
      port: 0,
      router: routerLink,
      config,
      registry: registry.address,
      maxBodyBytes: 1 << 20,
      allowRaggedBatch: false,
      queryTimeoutMs: 5000,
      maxInFlight: 100,
      logger,
      metrics: new prom.Registry(),
      tls: { cert: tls.cert, key: tls.key },
      appKeys: AppKeys.parse(`secured sha256:${hashToken(appKey).toString("hex")} web\n`, "keys"),
    });
  });

  afterAll(async () => {
    for (const t of transports) t.close();
    await gateway?.close();
    routerLink?.close();
    config?.close();
    await router?.close();
    await registry?.close();
    pki?.remove();
  });

  const post = (path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: "127.0.0.1", port: gateway.port, path, method: "POST", ca: tls.ca, headers: { "content-type": "application/json", ...headers } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ input: [1, 2] }));
    });

  const predictWhenReady = async (path: string, headers: Record<string, string>) => {
    const end = Date.now() + 10_000;
    for (;;) {
      const res = await post(path, headers);
      if (res.status !== 404 && res.status !== 503) return res;
      if (Date.now() > end) return res;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it("answers HTTPS REST with a valid key (either header), 401 without or with a wrong one", async () => {
    const ok = await predictWhenReady("/secured/predict", { "x-clipper-key": appKey });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ output: 42, default: false });
    expect((await post("/secured/predict", { authorization: `Bearer ${appKey}` })).status).toBe(200);
    const missing = await post("/secured/predict");
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body)).toEqual({ error: "unauthorized", cause: expect.stringContaining('application "secured" needs a key') });
    const wrong = await post("/secured/predict", { "x-clipper-key": generateToken() });
    expect(wrong.status).toBe(401);
    expect((await post("/open/predict")).status).toBe(200);
  });

  it("serves gRPC over TLS on the same port, checking the key in metadata", async () => {
    const t = createGrpcTransport({ address: `127.0.0.1:${gateway.port}`, credentials: grpc.credentials.createSsl(tls.ca) });
    transports.push(t);
    const client = createClient(PredictionService, t);
    const input = { value: { case: "doubles" as const, value: { values: [1, 2] } } };
    const err = await client.predict({ application: "secured", input }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    const res = await client.predict({ application: "secured", input }, { headers: { "x-clipper-key": appKey } });
    expect(res.prediction?.output).toBe("42");
  });

  it("refuses cleartext HTTP on the TLS port", async () => {
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(gateway.port, "127.0.0.1", () => socket.write("POST /open/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"));
      let got = "";
      socket.on("data", (c) => (got += c.toString("latin1")));
      socket.on("close", () => resolve(got));
      socket.on("error", () => undefined);
      socket.setTimeout(5000, () => socket.destroy());
    });
    expect(answer).not.toContain("HTTP/1.1 200");
  });

  it("reaches nothing with an untrusted CA", async () => {
    const err = await new Promise<Error>((resolve) => {
      const req = https.request({ host: "127.0.0.1", port: gateway.port, path: "/healthz", ca: fs.readFileSync(pki.rogue.ca) }, () =>
        resolve(new Error("connected")),
      );
      req.on("error", resolve);
      req.end();
    });
    expect(err.message).not.toBe("connected");
  });
});
