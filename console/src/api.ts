/** The console's API from the page: JSON calls and the live stream, with the operator's token. */
import type { ApiError, ConsoleState, HelloEvent, MetricsFrame, SessionInfo } from "../../services/console/console-api.js";
import { SseParser } from "./sse.js";

const TOKEN_KEY = "clipper-console-token";

/** The token lives in this tab's sessionStorage only; `#token=...` in the address puts it there (fragments never reach a server). */
export function takeToken(): string {
  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash)?.[1];
  if (fromHash !== undefined) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(fromHash));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function storeToken(token: string): void {
  if (token === "") sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class ConsoleApi {
  constructor(private readonly token: () => string) {}

  private headers(json: boolean): Record<string, string> {
    const token = this.token();
    return { ...(token === "" ? {} : { authorization: `Bearer ${token}` }), ...(json ? { "content-type": "application/json" } : {}) };
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(path, {
      method,
      headers: this.headers(body !== undefined),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        message = (JSON.parse(text) as ApiError).error;
      } catch {
        // not the API's JSON: keep the status
      }
      throw new ApiFailure(response.status, message);
    }
    return JSON.parse(text) as T;
  }

  session(): Promise<SessionInfo> {
    return this.call("GET", "/api/session");
  }

  /**
   * Follows /api/events until `signal` aborts or the stream ends; resolves
   * when it ends (the caller reconnects), rejects on a refusal.
   */
  async follow(
    handlers: { hello: (e: HelloEvent) => void; state: (s: ConsoleState) => void; frame: (f: MetricsFrame) => void },
    signal: AbortSignal,
  ): Promise<void> {
    const response = await fetch("/api/events", { headers: this.headers(false), signal });
    if (!response.ok || response.body === null) throw new ApiFailure(response.status, `the live stream answered HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (const event of parser.push(value)) {
        const data: unknown = JSON.parse(event.data);
        if (event.event === "hello") handlers.hello(data as HelloEvent);
        else if (event.event === "state") handlers.state(data as ConsoleState);
        else if (event.event === "frame") handlers.frame(data as MetricsFrame);
      }
    }
  }
}
