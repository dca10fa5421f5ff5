import { timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceImpl } from "@connectrpc/connect";
import type { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import { bearerToken, Code, ConnectError, hashToken } from "../shared/index.js";

/** Every application: a key listed under `*` opens every application and makes every one need a key. */
const ALL_APPLICATIONS = "*";
const REST_ROUTE = /^\/([^/]+)\/(predict|update)$/;

/**
 * Per-application prediction keys, stored as sha256 hashes. A keys file line
 * is `<application|*> sha256:<hex> [label]`. Applications the file does not
 * name stay open unless a `*` line exists.
 */
export class AppKeys {
  private constructor(private readonly keys: ReadonlyMap<string, readonly Buffer[]>) {}

  static parse(text: string, source: string): AppKeys {
    const keys = new Map<string, Buffer[]>();
    text.split("\n").forEach((raw, index) => {
      const line = raw.replace(/#.*/, "").trim();
      if (line === "") return;
      const [app = "", hashField = "", , ...rest] = line.split(/\s+/);
      const hex = /^sha256:([0-9a-f]{64})$/i.exec(hashField)?.[1];
      if (hex === undefined || rest.length > 0 || app === "") {
        throw new Error(`${source}:${index + 1}: expected "<application|*> sha256:<64 hex digits> [label]"`);
      }
      keys.set(app, [...(keys.get(app) ?? []), Buffer.from(hex, "hex")]);
    });
    return new AppKeys(keys);
  }

  static load(file: string): AppKeys {
    return AppKeys.parse(fs.readFileSync(file, "utf8"), file);
  }

  requiresKey(application: string): boolean {
    return this.keys.has(application) || this.keys.has(ALL_APPLICATIONS);
  }

  /** Throws Unauthenticated unless the key opens the application. Hashes are compared in constant time. */
  check(application: string, key: string | undefined): void {
    if (!this.requiresKey(application)) return;
    if (key === undefined) {
      throw new ConnectError(`application "${application}" needs a key: send "Authorization: Bearer <key>" or "X-Clipper-Key: <key>"`, Code.Unauthenticated);
    }
    const presented = hashToken(key);
    let matched = false;
    for (const hash of [...(this.keys.get(application) ?? []), ...(this.keys.get(ALL_APPLICATIONS) ?? [])]) {
      if (timingSafeEqual(presented, hash)) matched = true;
    }
    if (!matched) throw new ConnectError(`the key is not valid for application "${application}"`, Code.Unauthenticated);
  }
}

/** The key a caller presented: `Authorization: Bearer <key>` or `X-Clipper-Key: <key>`. */
export function presentedKey(headers: Headers): string | undefined {
  return headers.get("x-clipper-key")?.trim() || bearerToken(headers);
}

/** PredictionService (gRPC, Connect, gRPC-Web) with the key checked before each handler. */
export function withAppKeys(impl: ServiceImpl<typeof PredictionService>, keys: AppKeys): ServiceImpl<typeof PredictionService> {
  return {
    predict: (req, ctx) => {
      keys.check(req.application, presentedKey(ctx.requestHeader));
      return impl.predict(req, ctx);
    },
    predictBatch: (req, ctx) => {
      keys.check(req.application, presentedKey(ctx.requestHeader));
      return impl.predictBatch(req, ctx);
    },
    feedback: (req, ctx) => {
      keys.check(req.application, presentedKey(ctx.requestHeader));
      return impl.feedback(req, ctx);
    },
  };
}

type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Clipper's REST routes (`POST /{app}/predict|update`) answer 401 without a valid key; others pass through. */
export function restKeyGuard(keys: AppKeys, next: HttpHandler): HttpHandler {
  return (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    const route = REST_ROUTE.exec(path);
    if (route !== null) {
      let application: string;
      try {
        application = decodeURIComponent(route[1] ?? "");
      } catch {
        application = route[1] ?? "";
      }
      try {
        keys.check(application, presentedKey(headersOf(req)));
      } catch (err) {
        const text = JSON.stringify({ error: "unauthorized", cause: ConnectError.from(err).rawMessage });
        // The body is not read: closing the connection keeps it from being parsed as the next request.
        res.writeHead(401, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(text),
          "www-authenticate": 'Bearer realm="clipper"',
          connection: "close",
        });
        res.end(text);
        return;
      }
    }
    next(req, res);
  };
}

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const name of ["authorization", "x-clipper-key"]) {
    const value = req.headers[name];
    if (typeof value === "string") headers.set(name, value);
  }
  return headers;
}
