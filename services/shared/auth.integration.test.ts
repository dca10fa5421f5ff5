import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import {
  bearerToken,
  createAuthorizer,
  createTokenInFile,
  formatTokenLine,
  generateToken,
  hashToken,
  loadTokensFile,
  parseTokensFile,
  roleAllows,
  TokenAuthenticator,
} from "./auth.js";
import { Code, ConnectError } from "./errors.js";
import { type RunningGrpcServer, registration, startGrpcServer } from "./grpc-server.js";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.js";
import { clientSecurity } from "./tls.js";

const method = (name: string) => {
  const m = ManagementService.methods.find((x) => x.name === name);
  if (m === undefined) throw new Error(`no method ${name}`);
  return m;
};

describe("tokens file", () => {
  it("round-trips records and refuses malformed lines naming file and line", () => {
    const token = generateToken();
    expect(token).toMatch(/^clp_[A-Za-z0-9_-]{43}$/);
    const text = `# comment\n${formatTokenLine({ name: "ops", role: "admin", hash: hashToken(token) })}\n`;
    const [record] = parseTokensFile(text, "tokens");
    expect(record?.name).toBe("ops");
    expect(record?.role).toBe("admin");
    expect(text).not.toContain(token);
    expect(() => parseTokensFile("sha256:abc admin x", "f")).toThrow('f:1: expected "sha256:<64 hex digits> <role> <name>"');
    expect(() => parseTokensFile(`sha256:${"a".repeat(64)} root x`, "f")).toThrow("f:1: role must be one of admin, read-only, service");
    const line = `sha256:${"a".repeat(64)} admin x\n`;
    expect(() => parseTokensFile(line + line.replace("sha256:a", "sha256:b"), "f")).toThrow('f:2: token name "x" is used twice');
  });

  it("creates a token file with mode 0600 and appends, refusing a duplicate name", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-tokens-"));
    try {
      const file = path.join(dir, "tokens");
      const admin = createTokenInFile(file, "admin", "ops");
      const reader = createTokenInFile(file, "read-only", "dash");
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const auth = new TokenAuthenticator(loadTokensFile(file));
      expect(auth.authenticate(admin)).toEqual({ name: "ops", role: "admin" });
      expect(auth.authenticate(reader)).toEqual({ name: "dash", role: "read-only" });
      expect(auth.authenticate(`${admin}x`)).toBeUndefined();
      expect(fs.readFileSync(file, "utf8")).not.toContain(admin);
      expect(() => createTokenInFile(file, "admin", "ops")).toThrow('already has a token named "ops"');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads bearer tokens from the authorization header only", () => {
    expect(bearerToken(new Headers({ authorization: "Bearer abc" }))).toBe("abc");
    expect(bearerToken(new Headers({ authorization: "bearer  abc " }))).toBe("abc");
    expect(bearerToken(new Headers({ authorization: "Basic abc" }))).toBeUndefined();
    expect(bearerToken(new Headers())).toBeUndefined();
  });

  it("lets read-only call Get/List/Watch only, service also ReportReplicas and UpdatePolicyState, and model writes only on an admin's behalf", () => {
    expect(roleAllows("admin", method("CreateApplication"))).toBe(true);
    expect(roleAllows("read-only", method("ListApplications"))).toBe(true);
    expect(roleAllows("read-only", method("WatchConfig"))).toBe(true);
    expect(roleAllows("read-only", method("CreateApplication"))).toBe(false);
    expect(roleAllows("read-only", method("ReportReplicas"))).toBe(false);
    expect(roleAllows("service", method("ReportReplicas"))).toBe(true);
    // A router learns from feedback: it writes the policy state, which a read-only token may not.
    expect(roleAllows("service", method("UpdatePolicyState"))).toBe(true);
    expect(roleAllows("read-only", method("UpdatePolicyState"))).toBe(false);
    expect(roleAllows("service", method("DeleteApplication"))).toBe(false);
    for (const write of ["CreateModel", "UpdateModel", "SetModelVersion"]) {
      expect(roleAllows("service", method(write))).toBe(false);
      expect(roleAllows("service", method(write), "read-only")).toBe(false);
      expect(roleAllows("service", method(write), "service")).toBe(false);
      expect(roleAllows("service", method(write), "admin")).toBe(true);
    }
    expect(roleAllows("service", method("DeleteModel"), "admin")).toBe(false);
    expect(roleAllows("read-only", method("CreateModel"), "admin")).toBe(false);
  });
});

describe("startGrpcServer with authorize", () => {
  const admin = generateToken();
  const reader = generateToken();
  let server: RunningGrpcServer;
  const transports: GrpcTransport[] = [];
  const client = (token?: string) => {
    const t = createGrpcTransport({ address: server.address, ...clientSecurity({ token }) });
    transports.push(t);
    return t;
  };
  beforeAll(async () => {
    const authenticator = new TokenAuthenticator([
      { name: "ops", role: "admin", hash: hashToken(admin) },
      { name: "dash", role: "read-only", hash: hashToken(reader) },
    ]);
    server = await startGrpcServer({
      port: 0,
      authorize: createAuthorizer({ authenticator }),
      services: [
        registration(ManagementService, {
          listApplications: () => ({ applications: [] }),
          createApplication: () => ({}),
          async *watchConfig() {
            yield { event: { case: "snapshot", value: {} } };
          },
        }),
      ],
    });
  });
  afterAll(async () => {
    for (const t of transports) t.close();
    await server.close();
  });

  const codeOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    return err === undefined ? "ok" : `${Code[err.code]}: ${err.rawMessage}`;
  };

  it("answers Unauthenticated without a token or with a wrong one", async () => {
    const anonymous = createClient(ManagementService, client());
    expect(await codeOf(anonymous.listApplications({}))).toMatch(/^Unauthenticated: clipper.v1.ManagementService\/ListApplications needs an API token/);
    const wrong = createClient(ManagementService, client(generateToken()));
    expect(await codeOf(wrong.listApplications({}))).toBe("Unauthenticated: clipper.v1.ManagementService/ListApplications: the API token is not valid");
  });

  it("lets read-only list and watch but not create, naming the method", async () => {
    const ro = createClient(ManagementService, client(reader));
    expect(await codeOf(ro.listApplications({}))).toBe("ok");
    expect(await codeOf(ro.createApplication({ name: "a" }))).toBe(
      'PermissionDenied: token "dash" (role read-only) may not call clipper.v1.ManagementService/CreateApplication',
    );
    const events = [];
    for await (const e of ro.watchConfig({})) events.push(e.event.case);
    expect(events).toEqual(["snapshot"]);
  });

  it("refuses a streaming call without a token", async () => {
    const anonymous = createClient(ManagementService, client());
    const consume = async () => {
      for await (const _ of anonymous.watchConfig({})) void _;
    };
    expect(await codeOf(consume())).toMatch(/^Unauthenticated: clipper.v1.ManagementService\/WatchConfig needs an API token/);
  });

  it("lets admin do everything and keeps health open", async () => {
    expect(await codeOf(createClient(ManagementService, client(admin)).createApplication({ name: "a" }))).toBe("ok");
    const health = await createClient(Health, client()).check({ service: "" });
    expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});
