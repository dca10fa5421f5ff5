import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { type ClientSecurity, clientSecurity, createTokenInFile, generateToken, hashToken, ROLES, type Role } from "../services/shared/index.js";

/** Flag or environment value, flag first; "" counts as unset. */
type Lookup = (flag: string, envName: string) => string | undefined;

/**
 * How the CLI reaches the management API: `--token` / $CLIPPER_TOKEN, and
 * mutual TLS from `--tls-cert`, `--tls-key`, `--tls-ca` / $CLIPPER_TLS_*.
 * A CA alone is enough for a server that does not ask for a client certificate.
 */
export function cliClientSecurity(lookup: Lookup): ClientSecurity {
  const token = lookup("token", "CLIPPER_TOKEN");
  const cert = lookup("tls-cert", "CLIPPER_TLS_CERT");
  const key = lookup("tls-key", "CLIPPER_TLS_KEY");
  const ca = lookup("tls-ca", "CLIPPER_TLS_CA");
  if ((cert === undefined) !== (key === undefined)) throw new Error("--tls-cert and --tls-key go together");
  if (cert !== undefined && ca === undefined) throw new Error("--tls-cert needs --tls-ca (the CA of the services' certificates)");
  const read = (file: string, flag: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read --${flag} ${file}: ${(err as Error).message}`);
    }
  };
  const security = clientSecurity({ token });
  if (ca === undefined) return security;
  // Without a client certificate the CLI still talks TLS to servers that do not require one.
  const credentials = grpc.credentials.createSsl(
    read(ca, "tls-ca"),
    key === undefined ? null : read(key, "tls-key"),
    cert === undefined ? null : read(cert, "tls-cert"),
  );
  return { ...security, credentials };
}

export function parseRole(raw: string | undefined): Role {
  if (raw === undefined) throw new Error(`--role is required: ${ROLES.join(", ")}`);
  if (!(ROLES as readonly string[]).includes(raw)) throw new Error(`--role must be one of ${ROLES.join(", ")}, got "${raw}"`);
  return raw as Role;
}

/** `clipper token create`: appends the token's hash to the tokens file and returns the token. */
export function createApiToken(tokensFile: string, role: Role, name: string): string {
  fs.mkdirSync(path.dirname(tokensFile), { recursive: true });
  return createTokenInFile(tokensFile, role, name);
}

const APP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$|^\*$/;

/** `clipper key create`: appends a prediction key's hash for an application (or `*`) to the gateway's keys file. */
export function createAppKey(keysFile: string, app: string, label: string): string {
  if (!APP.test(app)) throw new Error(`--app must be an application name or "*", got "${app}"`);
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(label)) throw new Error(`--name must be one word of letters, digits, ".", "_", "@" or "-", got "${label}"`);
  fs.mkdirSync(path.dirname(keysFile), { recursive: true });
  const key = generateToken();
  fs.appendFileSync(keysFile, `${app} sha256:${hashToken(key).toString("hex")} ${label}\n`, { mode: 0o600 });
  return key;
}
