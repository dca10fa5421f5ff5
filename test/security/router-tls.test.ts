// The router's own security: gateways reach it by mutual TLS; without TLS it stays on loopback.
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import { Code, ConnectError, clientSecurity, createGrpcTransport, type GrpcTransport, loadTlsMaterial } from "../../services/shared/index.js";
import { type CertFiles, createTestPki, type TestPki } from "../../services/shared/testing/test-pki.js";
import { TestSystem, waitFor } from "../system.js";

const tlsFlags = (c: CertFiles) => ["--tls-cert", c.cert, "--tls-key", c.key, "--tls-ca", c.ca];
const query = { application: "nope", inputs: { type: InputType.DOUBLES, lengths: [1], doubles: [1] } };

async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("router with mutual TLS", () => {
  let pki: TestPki;
  let system: TestSystem;
  const transports: GrpcTransport[] = [];
  const client = (files: CertFiles | undefined) => {
    const tls = files === undefined ? undefined : loadTlsMaterial({ cert: files.cert, key: files.key, ca: files.ca });
    const t = createGrpcTransport({ address: system.address("router"), ...clientSecurity({ tls }) });
    transports.push(t);
    return createClient(QueryService, t);
  };

  beforeAll(async () => {
    pki = createTestPki();
    system = new TestSystem({ args: { registry: tlsFlags(pki.service), router: tlsFlags(pki.service) } });
    await system.startService("registry");
    await system.startService("router");
  }, 60_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    await system?.stop();
    pki?.remove();
  });

  it("answers a peer with a certificate from the trusted CA (and follows the registry over mTLS)", async () => {
    const trusted = client(pki.peer);
    // NOT_FOUND for an unknown application means the call got through and the config watch is up.
    expect(await waitFor("the router's config", async () => ((await code(trusted.query(query))) === Code.NotFound ? true : undefined))).toBe(true);
  });

  it("refuses a peer with a certificate from another CA, and a cleartext peer", async () => {
    // Refused at the handshake: neither an answer nor the router's NOT_FOUND.
    for (const peer of [pki.rogue, undefined]) {
      const result = await code(client(peer).query(query, { timeoutMs: 3000 }));
      expect(result).not.toBe("ok");
      expect(result).not.toBe(Code.NotFound);
    }
  });

  it("refuses to listen beyond loopback without TLS unless --insecure", async () => {
    const open = new TestSystem({ args: { router: ["--host", "0.0.0.0"] } });
    try {
      await open.startService("registry");
      await expect(open.startService("router")).rejects.toThrow(/exited with 2:[\s\S]*refusing to listen on 0.0.0.0 without --tls-cert/);
    } finally {
      await open.stop();
    }
  }, 30_000);
});
