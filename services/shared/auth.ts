import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import type { DescMethod } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import { Code, ConnectError } from "./errors.js";

/**
 * API tokens for the management API. A token is 32 random bytes; only its
 * sha256 is stored (a tokens file line is `sha256:<hex> <role> <name>`).
 * With that much entropy a fast hash is enough: nobody can brute-force it
 * back from a leaked file, and a slow hash would only cost every call.
 */
export const ROLES = ["admin", "read-only", "service"] as const;
export type Role = (typeof ROLES)[number];

export interface TokenRecord {
  name: string;
  role: Role;
  /** sha256 of the token, 32 bytes. */
  hash: Buffer;
}

export interface Principal {
  name: string;
  role: Role;
}

const TOKEN_PREFIX = "clp_";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** A new random token; shown once to its owner, stored only as its hash. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function formatTokenLine(record: TokenRecord): string {
  return `sha256:${record.hash.toString("hex")} ${record.role} ${record.name}\n`;
}

/** Parses a tokens file: one `sha256:<hex> <role> <name>` per line; `#` starts a comment. */
export function parseTokensFile(text: string, source: string): TokenRecord[] {
  const records: TokenRecord[] = [];
  const names = new Set<string>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") return;
    const where = `${source}:${index + 1}`;
    const [hashField = "", role = "", name = "", ...rest] = line.split(/\s+/);
    const hex = /^sha256:([0-9a-f]{64})$/i.exec(hashField)?.[1];
    if (hex === undefined) throw new Error(`${where}: expected "sha256:<64 hex digits> <role> <name>"`);
    if (!(ROLES as readonly string[]).includes(role)) throw new Error(`${where}: role must be one of ${ROLES.join(", ")}, got "${role}"`);
    if (!NAME.test(name) || rest.length > 0) throw new Error(`${where}: name must be one word of letters, digits, ".", "_", "@" or "-" (at most 64)`);
    if (names.has(name)) throw new Error(`${where}: token name "${name}" is used twice`);
    names.add(name);
    records.push({ name, role: role as Role, hash: Buffer.from(hex, "hex") });
  });
  return records;
}

export function loadTokensFile(file: string): TokenRecord[] {
  return parseTokensFile(fs.readFileSync(file, "utf8"), file);
}

/** Creates a token, appends its hash to the tokens file (created mode 0600) and returns the token. */
export function createTokenInFile(file: string, role: Role, name: string): string {
  if (!NAME.test(name)) throw new Error(`token name must be one word of letters, digits, ".", "_", "@" or "-" (at most 64), got "${name}"`);
  const existing = fs.existsSync(file) ? loadTokensFile(file) : [];
  if (existing.some((r) => r.name === name)) throw new Error(`${file} already has a token named "${name}"`);
  const token = generateToken();
  fs.appendFileSync(file, formatTokenLine({ name, role, hash: hashToken(token) }), { mode: 0o600 });
  return token;
}

/** Finds who a presented token belongs to, comparing hashes in constant time. */
export class TokenAuthenticator {
  constructor(private readonly records: readonly TokenRecord[]) {}

  get size(): number {
    return this.records.length;
  }

  authenticate(token: string): Principal | undefined {
    const presented = hashToken(token);
    let found: TokenRecord | undefined;
    // Every record is compared, so the time taken does not tell which one matched.
    for (const record of this.records) {
      if (timingSafeEqual(presented, record.hash) && found === undefined) found = record;
    }
    return found === undefined ? undefined : { name: found.name, role: found.role };
  }
}

/** The token in `authorization: Bearer <token>` (or another header of that form), or undefined. */
export function bearerToken(headers: Headers, header = "authorization"): string | undefined {
  const value = headers.get(header);
  if (value === null) return undefined;
  const match = /^Bearer[ \t]+(\S+)\s*$/i.exec(value);
  return match?.[1];
}

const READ_METHOD = /^(Get|List|Watch)/;
const management = (m: string) => `clipper.v1.ManagementService/${m}`;
/**
 * What the service role may write on its own: the container-manager reports
 * the replicas it runs; a router (or a gateway with the router in its
 * process) writes the learned state of a selection policy from feedback.
 */
const SERVICE_WRITES = new Set(["ReportReplicas", "UpdatePolicyState"].map(management));
/**
 * What the service role may write only on an admin's behalf (the admin's
 * token in ON_BEHALF_OF_HEADER): registering a model version (every runtime
 * names code the container-manager will run: a command's argv, a node
 * module's file, a pickled closure and its interpreter), scaling it and
 * making it current. The container-manager calls these only while serving an
 * admin's DeployModel, ScaleModel or StopModel, and forwards that admin's token.
 */
const SERVICE_DELEGATED_WRITES = new Set(["CreateModel", "UpdateModel", "SetModelVersion"].map(management));

/**
 * The metadata in which a service calling for someone else (the
 * container-manager for the admin whose DeployModel it serves) forwards that
 * caller's `authorization` value, `Bearer <token>`. The server checks the
 * token against its own tokens file.
 */
export const ON_BEHALF_OF_HEADER = "clipper-on-behalf-of";

/**
 * Whether a role may call a method. read-only: Get*, List*, Watch*; service:
 * those, ReportReplicas, UpdatePolicyState, and SERVICE_DELEGATED_WRITES when `onBehalfOf` (the
 * role of the forwarded caller) is admin; admin: everything.
 */
export function roleAllows(role: Role, method: DescMethod, onBehalfOf?: Role): boolean {
  if (role === "admin") return true;
  if (READ_METHOD.test(method.name)) return true;
  if (role !== "service") return false;
  const path = `${method.parent.typeName}/${method.name}`;
  return SERVICE_WRITES.has(path) || (onBehalfOf === "admin" && SERVICE_DELEGATED_WRITES.has(path));
}

/** Checks a call before its handler runs; throws a ConnectError to refuse it. */
export type Authorize = (method: DescMethod, headers: Headers) => void;

export interface AuthorizerOptions {
  authenticator: TokenAuthenticator;
  /** Services callable without a token (grpc.health.v1.Health by default: probes carry none). */
  openServices?: readonly string[];
}

export function createAuthorizer(options: AuthorizerOptions): Authorize {
  const open = new Set(options.openServices ?? ["grpc.health.v1.Health"]);
  return (method, headers) => {
    if (open.has(method.parent.typeName)) return;
    const path = `${method.parent.typeName}/${method.name}`;
    const token = bearerToken(headers);
    if (token === undefined) {
      throw new ConnectError(
        `${path} needs an API token: send the metadata "authorization: Bearer <token>" (clipper --token or $CLIPPER_TOKEN)`,
        Code.Unauthenticated,
      );
    }
    const principal = options.authenticator.authenticate(token);
    if (principal === undefined) throw new ConnectError(`${path}: the API token is not valid`, Code.Unauthenticated);
    const forwarded = bearerToken(headers, ON_BEHALF_OF_HEADER);
    const caller = forwarded === undefined ? undefined : options.authenticator.authenticate(forwarded);
    if (forwarded !== undefined && caller === undefined) {
      throw new ConnectError(`${path}: the API token forwarded in "${ON_BEHALF_OF_HEADER}" by token "${principal.name}" is not valid`, Code.Unauthenticated);
    }
    if (roleAllows(principal.role, method, caller?.role)) return;
    if (principal.role === "service" && SERVICE_DELEGATED_WRITES.has(path)) {
      const whose =
        caller === undefined
          ? `the call forwards no caller's token (in "${ON_BEHALF_OF_HEADER}")`
          : `the caller it forwards, token "${caller.name}", has role ${caller.role}`;
      throw new ConnectError(
        `token "${principal.name}" (role service) may call ${path} only on an admin's behalf, and ${whose}: ` +
          "deploy, scale and stop models through the container-manager with an admin token, or call the registry with one",
        Code.PermissionDenied,
      );
    }
    throw new ConnectError(`token "${principal.name}" (role ${principal.role}) may not call ${path}`, Code.PermissionDenied);
  };
}

/** A grpc-js client interceptor that sends `authorization: Bearer <token>` on every call. */
export function bearerInterceptor(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata: grpc.Metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}
