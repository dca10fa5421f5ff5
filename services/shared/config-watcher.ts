import { type Client, createClient } from "@connectrpc/connect";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import type { ConfigChange } from "../../gen/clipper/v1/resources_pb.js";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { applyConfigChange, type ConfigView, emptyConfigView, viewFromSnapshot } from "./config-view.js";
import { createGrpcTransport } from "./grpc-transport.js";
import type { Logger } from "./logger.js";
import type { ClientSecurity } from "./tls.js";

export type ConfigListener = (view: ConfigView, change: ConfigChange | undefined) => void;

/** The registry's configuration, kept current by WatchConfig. */
export interface ConfigWatcher {
  /** The latest view; the last one received while the registry is unreachable. */
  view(): ConfigView;
  /** The latest view, or undefined before the first snapshot (an empty view would read as "no applications"). */
  current(): ConfigView | undefined;
  /** Resolves after the first snapshot. */
  readonly ready: Promise<void>;
  /** Whether the watch stream is connected now. */
  connected(): boolean;
  /** Called after every snapshot (change undefined) and change. Returns an unsubscribe function. */
  onChange(listener: ConfigListener): () => void;
  close(): void;
}

/**
 * How often a watcher retries a registry it lost: 100 ms doubling to 500 ms
 * (with jitter), and from the first delay again after every snapshot. A failed
 * attempt costs one call that fails at once (a refused connection on loopback),
 * so retrying twice a second keeps a restarted registry unused for at most
 * about half a second more than the channel takes to reconnect (grpc-js's own
 * reconnect backoff, which createGrpcTransport caps at a second). A longer cap
 * (10 s, as before) left a registry that came back after a few seconds unused
 * for 6-11 s.
 */
export const WATCH_RECONNECT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 500, jitter: 0.2 };

export interface WatchConfigOptions {
  /** host:port of the registry. */
  registry: string;
  logger: Logger;
  backoff?: Backoff;
  /** TLS credentials and API token for the registry (clientSecurity in tls.ts). */
  security?: ClientSecurity;
  /**
   * The registry's client to watch through, so that a process keeps one channel
   * to the registry for everything it asks (the caller then owns and closes its
   * transport). Without it the watcher opens its own channel to `registry`.
   */
  client?: Client<typeof ManagementService>;
}

/**
 * Follows the registry's WatchConfig stream, reconnecting with backoff. Each
 * reconnection starts from a fresh snapshot, so nothing changed while the
 * registry was away is missed.
 */
export function watchConfig(options: WatchConfigOptions): ConfigWatcher {
  const { client, close: closeChannel } = registryChannel(options);
  const backoff = options.backoff ?? new Backoff(WATCH_RECONNECT_BACKOFF);
  const listeners = new Set<ConfigListener>();
  const closing = new AbortController();
  let view = emptyConfigView();
  let isConnected = false;
  let hasSnapshot = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const publish = (change: ConfigChange | undefined) => {
    for (const l of listeners) {
      try {
        l(view, change);
      } catch (err) {
        options.logger.error({ err }, "config listener failed");
      }
    }
  };

  void (async () => {
    while (!closing.signal.aborted) {
      try {
        for await (const event of client.watchConfig({}, { signal: closing.signal })) {
          if (event.event.case === "snapshot") {
            view = viewFromSnapshot(event.event.value);
            if (!isConnected) options.logger.info({ registry: options.registry, revision: String(view.revision) }, "config watch connected");
            isConnected = true;
            hasSnapshot = true;
            backoff.reset();
            markReady();
            publish(undefined);
          } else if (event.event.case === "change") {
            view = applyConfigChange(view, event.event.value);
            publish(event.event.value);
          }
        }
      } catch (err) {
        if (closing.signal.aborted) break;
        if (isConnected) options.logger.warn({ err: String(err), registry: options.registry }, "config watch lost; keeping the last configuration");
      }
      isConnected = false;
      if (closing.signal.aborted) break;
      await sleep(backoff.next(), closing.signal);
    }
  })();

  return {
    view: () => view,
    current: () => (hasSnapshot ? view : undefined),
    ready,
    connected: () => isConnected,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closing.abort();
      closeChannel();
    },
  };
}

/** The client given, or one on a channel of the watcher's own (closed with it). */
function registryChannel(options: WatchConfigOptions): { client: Client<typeof ManagementService>; close(): void } {
  if (options.client) return { client: options.client, close: () => {} };
  const transport = createGrpcTransport({ address: options.registry, ...options.security });
  return { client: createClient(ManagementService, transport), close: () => transport.close() };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
