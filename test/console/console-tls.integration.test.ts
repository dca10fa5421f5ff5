// The console with --tls-cert/--tls-key/--tls-ca: its page and API over HTTPS (a client that checks the
// certificate against the CA gets through; one that does not trust the CA, or speaks cleartext, does not), and its
// reads from a registry that itself requires mutual TLS.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServices, serviceNodeArgs } from "../../services/build.js";
import type { ConsoleState } from "../../services/console/index.js";
import { type CertFiles, createTestPki, type TestPki } from "../../services/shared/testing/test-pki.js";
import { repoRoot, TestSystem, waitFor, waitForListening } from "../system.js";

const tlsFlags = (c: CertFiles) => ["--tls-cert", c.cert, "--tls-key", c.key, "--tls-ca", c.ca];

/** A GET over HTTPS that trusts only `ca`: status and body, or the TLS error. */
function httpsGet(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...(ca === undefined ? {} : { ca: fs.readFileSync(ca) }), timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

describe("the console over TLS", () => {
  let pki: TestPki;
  let system: TestSystem;
  let consoleProcess: ChildProcess | undefined;
  let port = 0;
  const dir = fs.mkdtempSync(path.join(tmpdir(), "clipper-console-tls-"));

  beforeAll(async () => {
    pki = createTestPki();
    await buildServices(repoRoot);
    system = new TestSystem({ args: { registry: tlsFlags(pki.service) } });
    await system.startService("registry");
    // The page itself is not what this test is about: a one-file build stands in for dist/console-ui.
    const uiDir = path.join(dir, "ui");
    fs.mkdirSync(uiDir);
    fs.writeFileSync(path.join(uiDir, "index.html"), "<!doctype html><title>Clipper console</title>\n");
    const args = ["--host", "127.0.0.1", "--port", "0", "--registry", system.address("registry"), "--ui-dir", uiDir, ...tlsFlags(pki.peer)];
    args.push("--metrics-targets", `registry=http://127.0.0.1:${system.metricsPort("registry")}/metrics`);
    consoleProcess = spawn(process.execPath, [...serviceNodeArgs(repoRoot, "console"), ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    port = await waitForListening(consoleProcess, "console", [], 30_000);
  }, 90_000);

  afterAll(async () => {
    if (consoleProcess !== undefined && consoleProcess.exitCode === null) {
      const exited = new Promise((resolve) => consoleProcess?.once("exit", resolve));
      consoleProcess.kill("SIGTERM");
      await exited;
    }
    await system?.stop();
    pki?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("serves the page and its API over HTTPS to a client that trusts the CA, following the registry over mutual TLS", async () => {
    const page = await httpsGet(`https://127.0.0.1:${port}/`, pki.peer.ca);
    expect(page).toEqual({ status: 200, body: "<!doctype html><title>Clipper console</title>\n" });
    expect(await httpsGet(`https://localhost:${port}/healthz`, pki.peer.ca)).toEqual({ status: 200, body: "ok\n" });
    // The console's own watch of the registry goes through the registry's mutual TLS with the console's certificate.
    const state = await waitFor(
      "the registry's state through the console",
      async () => {
        const s = JSON.parse((await httpsGet(`https://127.0.0.1:${port}/api/state`, pki.peer.ca)).body) as ConsoleState;
        return s.registryConnected ? s : undefined;
      },
      15_000,
    );
    expect(state.applications).toEqual([]);
    const metrics = await httpsGet(`https://127.0.0.1:${port}/metrics`, pki.peer.ca);
    expect(metrics.body).toMatch(/clipper_console_requests_total\{route="state",status="200"/);
  });

  it("refuses a client that does not trust the CA, and cleartext HTTP", async () => {
    await expect(httpsGet(`https://127.0.0.1:${port}/healthz`, pki.rogue.ca)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    await expect(httpsGet(`https://127.0.0.1:${port}/healthz`, undefined)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    // An HTTP client on the TLS port gets no page (node's TLS server answers cleartext with a 400 and closes).
    const cleartext = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => `HTTP ${r.status}`,
      (err: unknown) => `failed: ${String(err)}`,
    );
    expect(cleartext).not.toBe("HTTP 200");
  });
});
