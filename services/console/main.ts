// The console's composition root: `node dist/console/main.mjs [--flag value ...]` (bundled by services/build.ts).
// Once serving it logs one JSON line {"msg":"listening","port":N,...} on stdout; with --port 0 that line is how a
// supervisor learns the port.
import { createClient } from "@connectrpc/connect";
import { ContainerManagerService } from "../../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import {
  clientSecurity,
  createGrpcTransport,
  createLogger,
  createMetricsRegistry,
  exitOnStartupError,
  loadServiceConfig,
  loadTokensFile,
  onShutdownSignal,
  prom,
  securityOptions,
  serverSecurity,
  TokenAuthenticator,
  watchConfig,
} from "../shared/index.js";
import { consoleConfigSpec } from "./config.js";
import { startConsoleHttp } from "./http-server.js";
import { consoleState, policyJson } from "./live-state.js";
import { MetricsScraper } from "./metrics-scraper.js";
import { OperatorCalls } from "./mutations.js";
import { policyWeights } from "./policy-weights.js";

async function main(): Promise<void> {
  const config = loadServiceConfig("console", {
    ...consoleConfigSpec,
    tokensFile: securityOptions.tokensFile(),
    insecure: securityOptions.insecure(),
    tlsCert: securityOptions.tlsCert(),
    tlsKey: securityOptions.tlsKey(),
    tlsCa: securityOptions.tlsCa(),
  });
  const logger = createLogger({ service: "console" });
  // Refuses a non-loopback address without a tokens file (unless --insecure), as every service does.
  const { tls } = serverSecurity("console", config);
  const authenticator = config.tokensFile === "" ? undefined : new TokenAuthenticator(loadTokensFile(config.tokensFile));

  // Reads go through the console's own token; writes carry the caller's, so they use a channel without one.
  const readTransport = createGrpcTransport({ address: config.registry, ...clientSecurity({ tls, token: config.token }) });
  const writeTransport = createGrpcTransport({ address: config.registry, ...clientSecurity({ tls }) });
  const logsTransport = createGrpcTransport({ address: config.containerManager, ...clientSecurity({ tls }) });
  const watcher = watchConfig({ registry: config.registry, logger, client: createClient(ManagementService, readTransport) });

  const metrics = createMetricsRegistry("console");
  const requests = new prom.Counter({
    name: "clipper_console_requests_total",
    help: "Requests to the console, by route and HTTP status.",
    labelNames: ["route", "status"],
    registers: [metrics],
  });
  const streams = new prom.Gauge({ name: "clipper_console_live_pages", help: "Pages following the console's live stream now.", registers: [metrics] });

  const reader = createClient(ManagementService, readTransport);
  // The learning policies' states, one GetPolicyState per such application and round (bounded: the first 50).
  const policies = async () => {
    const out: Record<string, Record<string, number>> = {};
    const learning = [...watcher.view().applications.values()].filter((a) => !["single", "split"].includes(policyJson(a.policy).kind)).slice(0, 50);
    await Promise.all(
      learning.map(async (app) => {
        const { state } = await reader.getPolicyState({ application: app.name, uid: "" }, { timeoutMs: 2000 });
        const weights = policyWeights(policyJson(app.policy), app.linkedModels, new TextDecoder().decode(state));
        if (weights !== undefined) out[app.name] = weights;
      }),
    );
    return out;
  };
  const scraper = new MetricsScraper({
    policies,
    targets: config.metricsTargets,
    intervalMs: config.scrapeIntervalMs,
    windowMs: config.rateWindowMs,
    historyFrames: config.historyFrames,
    maxResponseBytes: 8 * 1024 * 1024,
    maxSamplesPerTarget: 200_000,
    logger,
  });
  scraper.start();

  const server = await startConsoleHttp({
    host: config.host,
    port: config.port,
    tls: tls === undefined ? undefined : { cert: tls.cert, key: tls.key },
    uiDir: config.uiDir,
    authenticator,
    calls: new OperatorCalls({
      registry: createClient(ManagementService, writeTransport),
      containerManager: createClient(ContainerManagerService, logsTransport),
      view: () => watcher.view(),
    }),
    state: () => consoleState(watcher.view(), watcher.connected()),
    history: () => scraper.history(),
    onState: (listener) => watcher.onChange(() => listener()),
    onFrame: (listener) => scraper.onFrame(listener),
    metrics,
    requests,
    streams,
    maxStreams: config.maxStreams,
    maxBodyBytes: 64 * 1024,
    maxStreamBufferBytes: 4 * 1024 * 1024,
    logger,
  });
  logger.info(
    {
      port: server.port,
      host: config.host,
      registry: config.registry,
      targets: config.metricsTargets.map((t) => t.name),
      auth: authenticator !== undefined,
      tls: tls !== undefined,
      ownToken: config.token !== "",
    },
    "listening",
  );

  onShutdownSignal(logger, async () => {
    await server.close();
    await scraper.close();
    watcher.close();
    readTransport.close();
    writeTransport.close();
    logsTransport.close();
  });
}

main().catch(exitOnStartupError);
