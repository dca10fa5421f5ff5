import fs from "node:fs";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { type Authorize, bearerInterceptor, createAuthorizer, loadTokensFile, TokenAuthenticator, type TokenRecord } from "./auth.js";
import { ConfigError, type Option, parse } from "./config.js";

/**
 * Security configuration every service shares: TLS certificate files, the
 * tokens file a server checks API tokens against, the service token it sends
 * to other services, and the explicit opt-out for an open non-loopback server.
 * All default to off, which keeps the one-machine setup working unchanged.
 */
export const securityOptions = {
  tlsCert: (): Option<string> => ({
    flag: "tls-cert",
    env: "CLIPPER_TLS_CERT",
    default: "",
    parse: parse.string,
    help: "PEM certificate (chain) this service presents, as server and as client of other services",
  }),
  tlsKey: (): Option<string> => ({ flag: "tls-key", env: "CLIPPER_TLS_KEY", default: "", parse: parse.string, help: "PEM private key of --tls-cert" }),
  tlsCa: (): Option<string> => ({
    flag: "tls-ca",
    env: "CLIPPER_TLS_CA",
    default: "",
    parse: parse.string,
    help: "PEM CA certificates that peers' certificates must chain to (mutual TLS between services)",
  }),
  tokensFile: (): Option<string> => ({
    flag: "tokens-file",
    env: "CLIPPER_TOKENS_FILE",
    default: "",
    parse: parse.string,
    help: "file of hashed API tokens (`clipper token create`); set, every call needs a token",
  }),
  serviceToken: (): Option<string> => ({
    flag: "service-token",
    env: "CLIPPER_SERVICE_TOKEN",
    default: "",
    parse: parse.string,
    help: "API token sent to the registry (prefer the environment variable: flags show in ps)",
  }),
  insecure: (): Option<boolean> => ({
    flag: "insecure",
    env: "CLIPPER_INSECURE",
    default: false,
    parse: parse.bool,
    help: "allow listening on a non-loopback address without a tokens file",
  }),
};

export interface TlsFiles {
  /** Paths; "" means not configured. */
  cert: string;
  key: string;
  ca: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Reads the three PEM files, or returns undefined when none is configured. Partial configuration is an error. */
export function loadTlsMaterial(files: TlsFiles): TlsMaterial | undefined {
  const given = [files.cert, files.key, files.ca].filter((f) => f !== "").length;
  if (given === 0) return undefined;
  if (given < 3) throw new ConfigError("--tls-cert, --tls-key and --tls-ca go together: give all three or none");
  const read = (file: string, flag: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read --${flag} ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: read(files.cert, "tls-cert"), key: read(files.key, "tls-key"), ca: read(files.ca, "tls-ca") };
}

/** Mutual TLS for a service's gRPC server: clients must present a certificate from the CA. */
export function mutualTlsServerCredentials(tls: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(tls.ca, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}

/** How a client reaches another service: TLS credentials and the token interceptor, spread into createGrpcTransport. */
export interface ClientSecurity {
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
}

export function clientSecurity(options: { tls?: TlsMaterial | undefined; token?: string | undefined }): ClientSecurity {
  const out: ClientSecurity = {};
  if (options.tls !== undefined) out.credentials = grpc.credentials.createSsl(options.tls.ca, options.tls.key, options.tls.cert);
  // grpc-js refuses call credentials on an insecure channel; an interceptor works on both.
  if (options.token) out.channelOptions = { interceptors: [bearerInterceptor(options.token)] };
  return out;
}

/** What startGrpcServer needs to serve securely: mTLS credentials and the token check. */
export interface ServerSecurity {
  credentials?: grpc.ServerCredentials;
  authorize?: Authorize;
}

export interface ServerSecurityConfig {
  host: string;
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  tokensFile: string;
  insecure: boolean;
}

/**
 * Builds a management server's security from its configuration. Without a
 * tokens file the server is open, which is allowed only on a loopback address
 * unless --insecure says otherwise.
 */
export function serverSecurity(service: string, config: ServerSecurityConfig): { grpc: ServerSecurity; tls: TlsMaterial | undefined } {
  const tls = loadTlsMaterial({ cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa });
  const grpcSecurity: ServerSecurity = {};
  if (tls !== undefined) grpcSecurity.credentials = mutualTlsServerCredentials(tls);
  if (config.tokensFile !== "") {
    grpcSecurity.authorize = createAuthorizer({ authenticator: new TokenAuthenticator(readTokens(service, config.tokensFile)) });
  } else {
    assertLoopbackOrInsecure(service, config.host, config.insecure, "without --tokens-file");
  }
  return { grpc: grpcSecurity, tls };
}

function readTokens(service: string, file: string): TokenRecord[] {
  let records: TokenRecord[];
  try {
    records = loadTokensFile(file);
  } catch (err) {
    throw new ConfigError(`${service}: --tokens-file: ${(err as Error).message}`);
  }
  if (records.length === 0) throw new ConfigError(`${service}: --tokens-file ${file} has no tokens; create one with \`clipper token create\``);
  return records;
}

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const bare = host.replace(/^\[|\]$/g, "");
  if (net.isIPv4(bare)) return bare.startsWith("127.");
  if (net.isIPv6(bare)) return bare === "::1" || /^::ffff:127\./i.test(bare);
  return false;
}

/** Refuses to expose an open server beyond this machine unless the operator said --insecure. */
export function assertLoopbackOrInsecure(service: string, host: string, insecure: boolean, what: string): void {
  if (isLoopbackHost(host) || insecure) return;
  throw new ConfigError(
    `${service}: refusing to listen on ${host} ${what}: anyone who can reach it could change what is deployed. ` +
      "Give --tokens-file (see docs/security.md), listen on 127.0.0.1, or pass --insecure to accept the risk",
  );
}
