import fs from "node:fs";
import http from "node:http";
import { pipeline } from "node:stream/promises";
import { bearerToken, type Logger, type TokenAuthenticator } from "../shared/index.js";
import { artifactPath } from "./backends/launch.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;
const ROUTE = /^\/artifacts\/([^/?#]*)$/;

export interface ArtifactServerOptions {
  /** The container-manager's data directory (the ArtifactStore's files are under artifacts/sha256/). */
  dataDir: string;
  host: string;
  /** 0: any free port (the server's `port` says which). */
  port: number;
  /** Tokens on: every request needs `authorization: Bearer <token>` of any role (read-only suffices: it only reads). */
  authenticator?: TokenAuthenticator | undefined;
  /** Downloads served at once; past it the answer is 503 with Retry-After (a pod's fetch retries). */
  maxConcurrentDownloads?: number;
  /** A download that sends nothing for this long is dropped, so a stalled reader does not hold a slot. */
  idleTimeoutMs?: number;
  logger: Logger;
}

/** Every default in one place. */
export const DEFAULT_ARTIFACT_SERVER_OPTIONS = { maxConcurrentDownloads: 16, idleTimeoutMs: 30_000 } as const;

export interface ArtifactServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The content-addressed artifact store over HTTP, for pods that do not share the container-manager's disk:
 * `GET /artifacts/<sha256>` streams the bytes (the model pods fetch and verify them at start; docs/kubernetes.md,
 * "How artifacts reach the pods"). 400 for a malformed digest, 404 for an unknown one, 401 without a valid token when
 * tokens are on, 503 past the concurrency bound.
 */
export async function startArtifactServer(options: ArtifactServerOptions): Promise<ArtifactServer> {
  const o = { ...DEFAULT_ARTIFACT_SERVER_OPTIONS, ...options };
  let active = 0;
  const answer = (res: http.ServerResponse, status: number, error: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify({ error }));
  };
  const server = http.createServer((req, res) => {
    const route = ROUTE.exec(req.url ?? "");
    if (route === null) return answer(res, 404, `no route for ${req.method} ${req.url}: artifacts are at GET /artifacts/<sha256>`);
    if (req.method !== "GET" && req.method !== "HEAD")
      return answer(res, 405, `${req.method} is not allowed: artifacts are read with GET`, { allow: "GET, HEAD" });
    if (o.authenticator !== undefined) {
      const token = bearerToken(new Headers({ authorization: req.headers.authorization ?? "" }));
      if (token === undefined) return answer(res, 401, "tokens are on: send authorization: Bearer <token> (any role; read-only suffices)");
      if (o.authenticator.authenticate(token) === undefined) return answer(res, 401, "the API token is not valid");
    }
    const digest = route[1] ?? "";
    if (!SHA256_HEX.test(digest)) return answer(res, 400, `"${digest.slice(0, 80)}" is not a sha256 digest (64 lower-case hex characters)`);
    if (active >= o.maxConcurrentDownloads) {
      return answer(res, 503, `${o.maxConcurrentDownloads} downloads in progress, the most served at once; retry later`, { "retry-after": "1" });
    }
    const file = artifactPath(o.dataDir, digest);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return answer(res, 404, `no artifact with sha256 ${digest} in this container-manager's store`);
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size), "x-clipper-sha256": digest });
    if (req.method === "HEAD") return res.end();
    active++;
    res.setTimeout(o.idleTimeoutMs, () => res.destroy(new Error(`no progress in ${o.idleTimeoutMs} ms`)));
    pipeline(fs.createReadStream(file), res)
      .catch((err: unknown) => o.logger.warn({ err: String(err), digest }, "artifact download ended early"))
      .finally(() => active--);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : o.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
