import fs from "node:fs";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { Code, ConnectError } from "./errors.js";
import { type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { createTestPki, type TestPki } from "./testing/test-pki.js";
import { assertLoopbackOrInsecure, clientSecurity, isLoopbackHost, loadTlsMaterial, mutualTlsServerCredentials, serverSecurity } from "./tls.js";

describe("loopback default", () => {
  it("knows loopback hosts", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com"]) expect(isLoopbackHost(h)).toBe(false);
  });

  it("refuses an open non-loopback server unless --insecure", () => {
    expect(() => assertLoopbackOrInsecure("registry", "0.0.0.0", false, "without --tokens-file")).toThrow(
      /registry: refusing to listen on 0.0.0.0 without --tokens-file.*--insecure/,
    );
    expect(() => assertLoopbackOrInsecure("registry", "0.0.0.0", true, "without --tokens-file")).not.toThrow();
    const open = { host: "0.0.0.0", tlsCert: "", tlsKey: "", tlsCa: "", tokensFile: "", insecure: false };
    expect(() => serverSecurity("registry", open)).toThrow(/refusing to listen on 0.0.0.0/);
    expect(serverSecurity("registry", { ...open, host: "127.0.0.1" })).toEqual({ grpc: {}, tls: undefined });
  });

  it("wants all three certificate files or none", () => {
    expect(loadTlsMaterial({ cert: "", key: "", ca: "" })).toBeUndefined();
    expect(() => loadTlsMaterial({ cert: "a.pem", key: "", ca: "" })).toThrow("--tls-cert, --tls-key and --tls-ca go together");
    expect(() => loadTlsMaterial({ cert: "/nonexistent/a.pem", key: "/nonexistent/k", ca: "/nonexistent/c" })).toThrow(
      /cannot read --tls-cert \/nonexistent\/a.pem/,
    );
  });
});

describe("mutual TLS between services", () => {
  let pki: TestPki;
  let server: RunningGrpcServer;
  const transports: GrpcTransport[] = [];
  beforeAll(async () => {
    pki = createTestPki();
    const tls = loadTlsMaterial(pki.service);
    if (tls === undefined) throw new Error("no TLS material");
    server = await startGrpcServer({ port: 0, credentials: mutualTlsServerCredentials(tls), services: [] });
  });
  afterAll(async () => {
    for (const t of transports) t.close();
    await server?.close();
    pki?.remove();
  });

  const check = async (security: { credentials?: grpc.ChannelCredentials }) => {
    const transport = createGrpcTransport({ address: server.address, ...security });
    transports.push(transport);
    try {
      const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs: 3000 });
      return res.status === HealthCheckResponse_ServingStatus.SERVING ? "serving" : "not serving";
    } catch (err) {
      return Code[ConnectError.from(err).code];
    }
  };

  it("serves a client whose certificate chains to the CA", async () => {
    expect(await check(clientSecurity({ tls: loadTlsMaterial(pki.peer) }))).toBe("serving");
  });

  it("refuses a client without a certificate, with a rogue certificate, or in cleartext", async () => {
    const ca = fs.readFileSync(pki.service.ca);
    expect(await check({ credentials: grpc.credentials.createSsl(ca) })).toBe("Unavailable");
    const rogue = { cert: fs.readFileSync(pki.rogue.cert), key: fs.readFileSync(pki.rogue.key), ca };
    expect(await check(clientSecurity({ tls: rogue }))).toBe("Unavailable");
    expect(await check({})).toBe("Unavailable");
  });

  it("a client refuses a server whose certificate does not chain to its CA", async () => {
    const distrustful = { cert: fs.readFileSync(pki.peer.cert), key: fs.readFileSync(pki.peer.key), ca: fs.readFileSync(pki.rogue.ca) };
    expect(await check(clientSecurity({ tls: distrustful }))).toBe("Unavailable");
  });
});
