import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** PEM files of one certificate and its key, signed by `ca`. */
export interface CertFiles {
  cert: string;
  key: string;
  /** The CA certificate that signed it. */
  ca: string;
}

export interface TestPki {
  dir: string;
  /** Signed by the trusted CA; valid for 127.0.0.1 and localhost, as server and client. */
  service: CertFiles;
  /** A second certificate from the trusted CA (another service's identity). */
  peer: CertFiles;
  /** Signed by a CA nobody trusts. */
  rogue: CertFiles;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function createCa(dir: string, name: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}-ca.key`);
  const cert = path.join(dir, `${name}-ca.pem`);
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      `/CN=${name} test CA`,
    ],
    dir,
  );
  return { cert, key };
}

function issue(dir: string, ca: { cert: string; key: string }, name: string): CertFiles {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`], dir);
  openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext], dir);
  return { cert, key, ca: ca.cert };
}

/** A throwaway CA and certificates made at test time with the openssl CLI; no private key is committed. */
export function createTestPki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clipper-pki-"));
  const trusted = createCa(dir, "trusted");
  const rogueCa = createCa(dir, "rogue");
  return {
    dir,
    service: issue(dir, trusted, "service"),
    peer: issue(dir, trusted, "peer"),
    rogue: issue(dir, rogueCa, "rogue"),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
