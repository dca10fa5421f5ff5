// The registry and the container-manager as real processes with API tokens and
// mutual TLS: who may call what, and that a peer without a valid certificate is refused.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnvironment, runCli } from "../../cli/cli.js";
import type { Output } from "../../cli/output.js";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import {
  Code,
  ConnectError,
  clientSecurity,
  createGrpcTransport,
  createTokenInFile,
  type GrpcTransport,
  loadTlsMaterial,
  ON_BEHALF_OF_HEADER,
  type TlsMaterial,
} from "../../services/shared/index.js";
import { type CertFiles, createTestPki, type TestPki } from "../../services/shared/testing/test-pki.js";
import { repoRoot, TestSystem, typescriptSumModel, waitFor } from "../system.js";

const newApp = { name: "app", inputType: InputType.DOUBLES, defaultOutput: "0" };
class Capture implements Output {
  text = "";
  readonly isTTY = false;
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

async function clipper(argv: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const cliEnv: CliEnvironment = { stdout, stderr, env, cwd: repoRoot, repoRoot };
  const code = await runCli(argv, cliEnv);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const tlsFlags = (c: CertFiles) => ["--tls-cert", c.cert, "--tls-key", c.key, "--tls-ca", c.ca];

const outcome = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return "ok";
  } catch (err) {
    const e = ConnectError.from(err);
    return `${Code[e.code]}: ${e.rawMessage}`;
  }
};

describe("management API with tokens and mutual TLS", () => {
  let pki: TestPki;
  let system: TestSystem;
  let clientTls: TlsMaterial;
  const tokens = { admin: "", reader: "", service: "" };
  const transports: GrpcTransport[] = [];

  const transport = (address: string, security: Parameters<typeof clientSecurity>[0]) => {
    const t = createGrpcTransport({ address, ...clientSecurity(security) });
    transports.push(t);
    return t;
  };
  const registry = (token?: string) => createClient(ManagementService, transport(system.address("registry"), { tls: clientTls, token }));
  const manager = (token?: string) => createClient(ContainerManagerService, transport(system.address("container-manager"), { tls: clientTls, token }));

  beforeAll(async () => {
    pki = createTestPki();
    const tokensFile = path.join(pki.dir, "tokens");
    const created = await clipper(["token", "create", "--role", "admin", "--name", "ops", "--tokens-file", tokensFile], {});
    expect(created.code).toBe(0);
    tokens.admin = created.stdout.trim();
    expect(fs.readFileSync(tokensFile, "utf8")).not.toContain(tokens.admin);
    tokens.reader = createTokenInFile(tokensFile, "read-only", "dashboard");
    tokens.service = createTokenInFile(tokensFile, "service", "container-manager");
    const material = loadTlsMaterial(pki.peer);
    if (material === undefined) throw new Error("no TLS material");
    clientTls = material;
    system = new TestSystem({
      args: {
        registry: ["--tokens-file", tokensFile, ...tlsFlags(pki.service)],
        "container-manager": ["--tokens-file", tokensFile, "--service-token", tokens.service, ...tlsFlags(pki.service)],
      },
    });
    await system.startService("registry");
    await system.startService("container-manager");
  }, 60_000);

  afterAll(async () => {
    for (const t of transports) t.close();
    await system?.stop();
    pki?.remove();
  });

  it("refuses calls without a token, and with an unknown one", async () => {
    expect(await outcome(registry().listApplications({}))).toMatch(/^Unauthenticated: clipper.v1.ManagementService\/ListApplications needs an API token/);
    expect(await outcome(manager().listModelReplicas({}))).toMatch(/^Unauthenticated: .*ListModelReplicas needs an API token/);
    expect(await outcome(registry("clp_not-a-real-token").listApplications({}))).toBe(
      "Unauthenticated: clipper.v1.ManagementService/ListApplications: the API token is not valid",
    );
  });

  it("lets a read-only token read but not change anything, naming the method", async () => {
    expect(await outcome(registry(tokens.reader).listApplications({}))).toBe("ok");
    expect(await outcome(manager(tokens.reader).listModelReplicas({}))).toBe("ok");
    expect(await outcome(registry(tokens.reader).createApplication(newApp))).toBe(
      'PermissionDenied: token "dashboard" (role read-only) may not call clipper.v1.ManagementService/CreateApplication',
    );
    expect(await outcome(manager(tokens.reader).scaleModel({ name: "m", version: "1", replicas: 1 }))).toBe(
      'PermissionDenied: token "dashboard" (role read-only) may not call clipper.v1.ContainerManagerService/ScaleModel',
    );
  });

  it("lets an admin token change things; the service token cannot touch applications", async () => {
    expect(await outcome(registry(tokens.admin).createApplication(newApp))).toBe("ok");
    expect((await registry(tokens.reader).listApplications({})).applications.map((a) => a.name)).toEqual(["app"]);
    expect(await outcome(registry(tokens.service).deleteApplication({ name: "anything" }))).toMatch(
      /^PermissionDenied: token "container-manager" \(role service\)/,
    );
  });

  it("lets the service token register, scale or switch a model version only on an admin's behalf", async () => {
    const marker = path.join(pki.dir, "service-token-ran-this");
    const command = { name: "sneaky", version: "1", inputType: InputType.DOUBLES, desiredReplicas: 1 };
    const runtime = { kind: { case: "command" as const, value: { argv: ["/bin/sh", "-c", `touch ${marker}; sleep 30`] } } };
    const create = (headers?: Record<string, string>) =>
      outcome(registry(tokens.service).createModel({ model: { ...command, runtime } }, headers === undefined ? {} : { headers }));
    const alone = 'PermissionDenied: token "container-manager" (role service) may call clipper.v1.ManagementService/CreateModel only on an admin\'s behalf';
    expect(await create()).toMatch(new RegExp(`^${alone.replace(/[()]/g, "\\$&")}, and the call forwards no caller's token`));
    expect(await create({ [ON_BEHALF_OF_HEADER]: `Bearer ${tokens.reader}` })).toMatch(/the caller it forwards, token "dashboard", has role read-only/);
    expect(await create({ [ON_BEHALF_OF_HEADER]: "Bearer clp_forged" })).toBe(
      'Unauthenticated: clipper.v1.ManagementService/CreateModel: the API token forwarded in "clipper-on-behalf-of" by token "container-manager" is not valid',
    );
    expect(await outcome(registry(tokens.service).updateModel({ name: "m", version: "1", desiredReplicas: 3 }))).toMatch(/only on an admin's behalf/);
    expect(await outcome(registry(tokens.service).setModelVersion({ name: "m", version: "1" }))).toMatch(/only on an admin's behalf/);
    // What was refused was never registered, so nothing ran it.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await registry(tokens.reader).listModels({})).models).toEqual([]);
    expect(fs.existsSync(marker)).toBe(false);

    // Through the container-manager an admin's deploy registers, scales and makes current with the service token,
    // forwarding the admin's token.
    const model = typescriptSumModel("delegated");
    for await (const _ of manager(tokens.admin).deployModel({ model, setCurrent: true, timeoutSeconds: 60 })) {
      // drain the progress until READY
    }
    const registered = await registry(tokens.reader).getModel({ name: "delegated", version: "1" });
    expect(registered.model?.desiredReplicas).toBe(1);
    expect(registered.currentVersion).toBe("1");
    expect(await outcome(manager(tokens.admin).scaleModel({ name: "delegated", version: "1", replicas: 0, timeoutSeconds: 30 }))).toBe("ok");
    expect((await registry(tokens.reader).getModel({ name: "delegated", version: "1" })).model?.desiredReplicas).toBe(0);
  }, 90_000);

  it("connects the container-manager's watch to the registry with its service token", async () => {
    await waitFor("the container-manager's config watch", () =>
      system.logs("container-manager").some((l) => l.includes("config watch connected")) ? true : undefined,
    );
  });

  it("refuses a peer without a certificate from the CA, or in cleartext", async () => {
    const rogue = { cert: fs.readFileSync(pki.rogue.cert), key: fs.readFileSync(pki.rogue.key), ca: clientTls.ca };
    const rogueClient = createClient(ManagementService, transport(system.address("registry"), { tls: rogue, token: tokens.admin }));
    expect(await outcome(rogueClient.listApplications({}, { timeoutMs: 3000 }))).toMatch(/^Unavailable/);
    const cleartext = createClient(ManagementService, transport(system.address("registry"), { token: tokens.admin }));
    expect(await outcome(cleartext.listApplications({}, { timeoutMs: 3000 }))).toMatch(/^Unavailable/);
  });

  it("lets the CLI pass its token and client certificate", async () => {
    const flags = ["--registry", system.address("registry"), "--tls-ca", pki.peer.ca, "--tls-cert", pki.peer.cert, "--tls-key", pki.peer.key];
    const listed = await clipper([...flags, "app", "list"], { CLIPPER_TOKEN: tokens.reader });
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    const anonymous = await clipper([...flags, "app", "list"], {});
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain("needs an API token");
    expect(anonymous.stderr).toContain("--token or $CLIPPER_TOKEN");
    const denied = await clipper([...flags, "--token", tokens.reader, "app", "delete", "app"], {});
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("may not call clipper.v1.ManagementService/DeleteApplication");
  });

  it("lets the Python admin pass its token and client certificate", () => {
    const port = (name: "registry" | "container-manager") => system.address(name).split(":")[1] ?? "";
    const run = spawnSync(
      path.join(repoRoot, ".venv", "bin", "python"),
      [
        path.join(repoRoot, "test", "security", "python_admin_auth.py"),
        port("registry"),
        port("container-manager"),
        tokens.reader,
        pki.peer.ca,
        pki.peer.cert,
        pki.peer.key,
      ],
      { encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH ?? "", PYTHONPATH: path.join(repoRoot, "sdk", "python", "src") } },
    );
    expect(run.stderr).toBe("");
    expect(run.stdout).toContain("apps ['app']");
    expect(run.stdout).toContain("replicas 0");
    expect(run.stdout).toMatch(/delete refused .*may not call clipper.v1.ManagementService\/DeleteApplication/);
    expect(run.stdout).toMatch(/anonymous refused .*needs an API token/);
  });

  it("never writes a token to the logs", () => {
    const logs = [...system.logs("registry"), ...system.logs("container-manager")].join("\n");
    for (const token of Object.values(tokens)) expect(logs).not.toContain(token);
  });
});

describe("the open one-machine default", () => {
  it("refuses to listen beyond loopback without a tokens file unless --insecure", async () => {
    const system = new TestSystem({ args: { registry: ["--host", "0.0.0.0"] } });
    try {
      await expect(system.startService("registry")).rejects.toThrow(/exited with 2:[\s\S]*refusing to listen on 0.0.0.0 without --tokens-file/);
    } finally {
      await system.stop();
    }
  }, 30_000);
});
