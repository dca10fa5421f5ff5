// The container-manager: runs model replicas as local processes.
//   node --import tsx services/container-manager/main.ts [--flag value ...]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import {
  clientSecurity,
  commonOptions,
  createLogger,
  createMetricsRegistry,
  defaults,
  exitOnStartupError,
  isLoopbackHost,
  type Logger,
  latencyBucketsOption,
  loadServiceConfig,
  loadTokensFile,
  onShutdownSignal,
  parse,
  securityOptions,
  serverSecurity,
  startMetricsServer,
  startTracing,
  TokenAuthenticator,
} from "../shared/index.js";
import { DEFAULT_ARTIFACT_SERVER_OPTIONS, startArtifactServer } from "./artifact-server.js";
import { ContainerEngineBackend } from "./backends/container-engine-backend.js";
import { DEFAULT_KUBERNETES_OPTIONS, KubernetesBackend, parseNodeSelector, parseTolerations } from "./backends/kubernetes-backend.js";
import { replicaUserCannotEnter, resolveReplicaUser } from "./backends/replica-user.js";
import { startContainerManager } from "./manager.js";
import { DEFAULT_PYTHON_ENVIRONMENTS } from "./python-environments.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const venvPython = path.join(repoRoot, ".venv", "bin", "python");

const spec = {
  host: commonOptions.host("CLIPPER_CONTAINER_MANAGER"),
  port: commonOptions.port("CLIPPER_CONTAINER_MANAGER", defaults.containerManagerPort, "gRPC port"),
  metricsPort: commonOptions.metricsPort("CLIPPER_CONTAINER_MANAGER", defaults.containerManagerMetricsPort),
  registry: commonOptions.registry(),
  dataDir: commonOptions.dataDir("data directory (artifacts/, logs/)"),
  python: {
    flag: "python",
    env: "CLIPPER_PYTHON",
    default: fs.existsSync(venvPython) ? venvPython : "python3",
    parse: parse.string,
    help: "Python interpreter for python_closure models",
  },
  java: {
    flag: "java",
    env: "CLIPPER_JAVA",
    default: "java",
    parse: parse.string,
    help: "java executable for java_class models (a path, or a name looked up on PATH); Java 17 or later",
  },
  javaSdkJar: {
    flag: "java-sdk-jar",
    env: "CLIPPER_JAVA_SDK_JAR",
    default: "",
    parse: parse.string,
    help: "the Java SDK's runnable jar for java_class models; empty: <repo-root>/sdk/java/target/clipper-model-sdk-0.1.0-all.jar (cd sdk/java && mvn install)",
  },
  rRunner: {
    flag: "r-runner",
    env: "CLIPPER_R_RUNNER",
    default: "",
    parse: parse.string,
    help: "the R SDK's container runner for r_function models; empty: <repo-root>/sdk/r/clippermodel/inst/bin/clipper-r-model",
  },
  rLibrary: {
    flag: "r-library",
    env: "CLIPPER_R_LIBRARY",
    default: "",
    parse: parse.string,
    help: "the R library holding the clippermodel package, given to R replicas as R_LIBS; empty: <repo-root>/.tools/r-library when it holds it, else R's own",
  },
  pythonEnvsDir: {
    flag: "python-envs-dir",
    env: "CLIPPER_PYTHON_ENVS_DIR",
    default: "",
    parse: parse.string,
    help: "where the virtual environments built for closures that record packages are cached; empty: <data-dir>/python-envs",
  },
  pythonEnvsMaxCount: {
    flag: "python-envs-max-count",
    env: "CLIPPER_PYTHON_ENVS_MAX_COUNT",
    default: DEFAULT_PYTHON_ENVIRONMENTS.maxEnvironments,
    parse: parse.int(1, 10_000),
    help: "most cached Python environments; past it the least recently used one no model uses is removed",
  },
  pythonEnvsMaxBytes: {
    flag: "python-envs-max-bytes",
    env: "CLIPPER_PYTHON_ENVS_MAX_BYTES",
    default: DEFAULT_PYTHON_ENVIRONMENTS.maxBytes,
    parse: parse.int(1, Number.MAX_SAFE_INTEGER),
    help: "most bytes of all cached Python environments together; past it the least recently used ones no model uses are removed",
  },
  pythonEnvBuildTimeoutSeconds: {
    flag: "python-env-build-timeout-seconds",
    env: "CLIPPER_PYTHON_ENV_BUILD_TIMEOUT_SECONDS",
    default: DEFAULT_PYTHON_ENVIRONMENTS.buildTimeoutMs / 1000,
    parse: parse.int(1, 3600),
    help: "longest build of one Python environment (the deploy waits for it); past it the build is stopped and the deploy fails",
  },
  pythonEnvInstaller: {
    flag: "python-env-installer",
    env: "CLIPPER_PYTHON_ENV_INSTALLER",
    default: DEFAULT_PYTHON_ENVIRONMENTS.installer,
    parse: parse.oneOf("auto", "uv", "pip"),
    help: "what builds Python environments: uv (on PATH or beside --python), pip (python -m venv, then pip), or auto: uv when found, else pip",
  },
  repoRoot: {
    flag: "repo-root",
    env: "CLIPPER_REPO_ROOT",
    default: repoRoot,
    parse: (raw: string) => path.resolve(raw),
    help: "Clipper checkout (SDK runtimes)",
  },
  maxArtifactBytes: {
    flag: "max-artifact-bytes",
    env: "CLIPPER_MAX_ARTIFACT_BYTES",
    default: 512 * 1024 * 1024,
    parse: parse.int(1, Number.MAX_SAFE_INTEGER),
    help: "largest artifact accepted by UploadArtifact",
  },
  deployTimeoutSeconds: {
    flag: "deploy-timeout-seconds",
    env: "CLIPPER_DEPLOY_TIMEOUT_SECONDS",
    default: 120,
    parse: parse.int(1, 3600),
    help: "default wait for replicas to become ready",
  },
  maxReplicas: {
    flag: "max-replicas",
    env: "CLIPPER_MAX_REPLICAS",
    default: 64,
    parse: parse.int(1, 100_000),
    help: "most replicas one model version may ask for (DeployModel, ScaleModel)",
  },
  replicaMemoryLimitBytes: {
    flag: "replica-memory-limit-bytes",
    env: "CLIPPER_REPLICA_MEMORY_LIMIT_BYTES",
    default: 0,
    parse: parse.int(0, Number.MAX_SAFE_INTEGER),
    help: "kill and restart a replica whose resident memory exceeds this (checked every health check; --backend docker: the container's cgroup limit); 0: no limit",
  },
  replicaCpus: {
    flag: "replica-cpus",
    env: "CLIPPER_REPLICA_CPUS",
    default: 0,
    parse: (raw: string): number => {
      if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) > 1024) throw new Error("expected a number of CPUs between 0 and 1024, e.g. 0.5");
      return Number(raw);
    },
    help: "--backend docker: each replica's CPU quota in CPUs (e.g. 0.5); 0: no limit",
  },
  replicaPidsLimit: {
    flag: "replica-pids-limit",
    env: "CLIPPER_REPLICA_PIDS_LIMIT",
    default: 1024,
    parse: parse.int(0, 4_194_304),
    help: "--backend docker: most processes and threads in each replica's container; 0: no limit",
  },
  dockerSocket: {
    flag: "docker-socket",
    env: "CLIPPER_DOCKER_SOCKET",
    default: process.env.DOCKER_HOST?.startsWith("unix://") ? process.env.DOCKER_HOST.slice("unix://".length) : "/var/run/docker.sock",
    parse: parse.string,
    help: "--backend docker: the Docker Engine API's unix socket (Docker's, or podman system service's; docs/containers.md)",
  },
  replicaUser: {
    flag: "replica-user",
    env: "CLIPPER_REPLICA_USER",
    default: "",
    parse: parse.string,
    help: "run replicas as this unprivileged user (name or uid; e.g. nobody) instead of the container-manager's own; needs root",
  },
  backend: {
    flag: "backend",
    env: "CLIPPER_BACKEND",
    default: "local" as "local" | "kubernetes" | "docker",
    parse: parse.oneOf("local", "kubernetes", "docker"),
    help: "where replicas run: local (child processes), kubernetes (a Deployment per model version; docs/kubernetes.md) or docker (a container per replica, Docker or Podman; docs/containers.md)",
  },
  kubeconfig: {
    flag: "kubeconfig",
    env: "CLIPPER_KUBECONFIG",
    default: "",
    parse: parse.string,
    help: "--backend kubernetes: kubeconfig file; empty: $KUBECONFIG, else ~/.kube/config, else the in-cluster ServiceAccount",
  },
  namespace: {
    flag: "namespace",
    env: "CLIPPER_NAMESPACE",
    default: "",
    parse: parse.string,
    help: "--backend kubernetes: namespace (empty: the kubeconfig's, else default)",
  },
  clusterName: {
    flag: "cluster-name",
    env: "CLIPPER_CLUSTER_NAME",
    default: "default",
    parse: parse.string,
    help: "--backend kubernetes or docker: names and labels every object, so several systems share a namespace or an engine",
  },
  image: {
    flag: "image",
    env: "CLIPPER_MODEL_IMAGE",
    default: DEFAULT_KUBERNETES_OPTIONS.image as string,
    parse: parse.string,
    help: "--backend kubernetes or docker: the model runtime image",
  },
  modelNodeSelector: {
    flag: "model-node-selector",
    env: "CLIPPER_MODEL_NODE_SELECTOR",
    default: {} as Record<string, string>,
    parse: parseNodeSelector,
    help: "--backend kubernetes: the model pods' nodeSelector, key=value,... (the nodes set aside for models); empty: any node",
  },
  modelTolerations: {
    flag: "model-tolerations",
    env: "CLIPPER_MODEL_TOLERATIONS",
    default: [] as ReturnType<typeof parseTolerations>,
    parse: parseTolerations,
    help: "--backend kubernetes: taints the model pods tolerate, key=value:Effect,key:Effect,... (kubectl taint's syntax); empty: none",
  },
  artifactsPort: {
    flag: "artifacts-port",
    env: "CLIPPER_CONTAINER_MANAGER_ARTIFACTS_PORT",
    default: 1342,
    parse: parse.int(0, 65_535),
    help: "--backend kubernetes: HTTP port of the artifact server the model pods fetch their artifacts from (GET /artifacts/<sha256>); 0: any free port",
  },
  artifactsUrl: {
    flag: "artifacts-url",
    env: "CLIPPER_ARTIFACTS_URL",
    default: "",
    parse: parse.string,
    help: "--backend kubernetes: the artifact server as the model pods reach it (in a cluster: the container-manager's Service, e.g. http://clipper-container-manager:1342); empty: http://<host>:<artifacts-port>",
  },
  artifactsTokenSecret: {
    flag: "artifacts-token-secret",
    env: "CLIPPER_ARTIFACTS_TOKEN_SECRET",
    default: undefined as { name: string; key: string } | undefined,
    parse: parseSecretKey,
    help: "--backend kubernetes with --tokens-file: the Secret (name:key, key default token) holding the token the model pods send to the artifact server (read-only suffices)",
  },
  artifactsMaxConcurrentDownloads: {
    flag: "artifacts-max-concurrent-downloads",
    env: "CLIPPER_ARTIFACTS_MAX_CONCURRENT_DOWNLOADS",
    default: DEFAULT_ARTIFACT_SERVER_OPTIONS.maxConcurrentDownloads as number,
    parse: parse.int(1, 10_000),
    help: "--backend kubernetes: artifact downloads served at once; past it a pod's fetch is told to retry (503)",
  },
  latencyBuckets: latencyBucketsOption,
  tokensFile: securityOptions.tokensFile(),
  serviceToken: securityOptions.serviceToken(),
  insecure: securityOptions.insecure(),
  tlsCert: securityOptions.tlsCert(),
  tlsKey: securityOptions.tlsKey(),
  tlsCa: securityOptions.tlsCa(),
  stopGraceMs: { flag: "stop-grace-ms", env: "CLIPPER_STOP_GRACE_MS", default: 5000, parse: parse.int(0, 600_000), help: "SIGTERM to SIGKILL delay" },
};

async function main(): Promise<void> {
  const config = loadServiceConfig("container-manager", spec);
  const logger = createLogger({ service: "container-manager" });
  const tracing = startTracing("container-manager");
  const security = serverSecurity("container-manager", config);
  const metrics = createMetricsRegistry("container-manager");
  const replicaUser = config.replicaUser === "" ? undefined : resolveReplicaUser(config.replicaUser);
  if (replicaUser !== undefined) {
    fs.mkdirSync(config.dataDir, { recursive: true });
    const problem = replicaUserCannotEnter(replicaUser, config.dataDir);
    if (problem !== undefined) throw new Error(`--replica-user ${config.replicaUser}: ${problem}`);
  } else if (process.getuid?.() === 0) {
    logger.warn({}, "running as root: model replicas run as root too; --replica-user nobody (or another unprivileged user) runs them without it");
  }
  // The model pods do not share this data dir: they fetch their artifacts over HTTP (docs/kubernetes.md, "How artifacts reach the pods").
  const artifactServer =
    config.backend === "kubernetes"
      ? await startArtifactServer({
          dataDir: config.dataDir,
          host: config.host,
          port: config.artifactsPort,
          authenticator: config.tokensFile !== "" ? new TokenAuthenticator(loadTokensFile(config.tokensFile)) : undefined,
          maxConcurrentDownloads: config.artifactsMaxConcurrentDownloads,
          logger,
        })
      : undefined;
  if (artifactServer !== undefined && config.artifactsUrl === "" && !isLoopbackHost(config.host)) {
    logger.warn({ host: config.host }, "no --artifacts-url: model pods are told to fetch from this --host, which they may not reach; give the Service's URL");
  }
  const kubernetes =
    artifactServer !== undefined
      ? await startKubernetesBackend(
          { ...config, artifactsUrl: config.artifactsUrl !== "" ? config.artifactsUrl : `http://${config.host}:${artifactServer.port}` },
          logger,
        )
      : undefined;
  const containers = config.backend === "docker" ? await startContainerEngineBackend(config, logger) : undefined;
  const replicaBackend = kubernetes ?? containers;
  const manager = await startContainerManager({
    ...(replicaBackend !== undefined ? { replicaBackend } : {}),
    host: config.host,
    port: config.port,
    registry: config.registry,
    dataDir: config.dataDir,
    repoRoot: config.repoRoot,
    python: config.python,
    java: config.java,
    ...(config.javaSdkJar !== "" ? { javaSdkJar: path.resolve(config.javaSdkJar) } : {}),
    ...(config.rRunner !== "" ? { rRunner: path.resolve(config.rRunner) } : {}),
    ...(config.rLibrary !== "" ? { rLibrary: path.resolve(config.rLibrary) } : {}),
    pythonEnvironments: {
      ...(config.pythonEnvsDir !== "" ? { directory: path.resolve(config.pythonEnvsDir) } : {}),
      installer: config.pythonEnvInstaller,
      maxEnvironments: config.pythonEnvsMaxCount,
      maxBytes: config.pythonEnvsMaxBytes,
      buildTimeoutMs: config.pythonEnvBuildTimeoutSeconds * 1000,
    },
    logger,
    maxArtifactBytes: config.maxArtifactBytes,
    deployTimeoutMs: config.deployTimeoutSeconds * 1000,
    maxReplicas: config.maxReplicas,
    backend: {
      stopGraceMs: config.stopGraceMs,
      memoryLimitBytes: config.replicaMemoryLimitBytes,
      ...(replicaUser === undefined ? {} : { replicaUser }),
    },
    metrics,
    latencyBuckets: config.latencyBuckets,
    serverSecurity: security.grpc,
    registrySecurity: clientSecurity({ tls: security.tls, token: config.serviceToken }),
  });
  // --python-env-installer uv without a uv fails here, at start, rather than at the first deploy that needs it.
  const pythonEnvInstaller = manager.pythonEnvironments === undefined ? undefined : (manager.pythonEnvironments.uv() ?? "pip");
  const metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort);
  onShutdownSignal(logger, async () => {
    // On Kubernetes the replicas outlive the container-manager (a rolling update or drain must not delete the models): it
    // hands over to the next one, which adopts the Deployments. A model goes when the registry drops it.
    await manager.close(kubernetes !== undefined ? { handover: true } : {});
    await artifactServer?.close();
    await metricsServer.close();
    await tracing?.shutdown();
  });
  // SIGUSR2: exit leaving the replicas running for the next container-manager on this data directory to adopt
  // (`clipper restart container-manager` sends it), so a restart costs no replica and no query.
  process.once("SIGUSR2", () => {
    logger.info({}, "handing over: exiting with the replicas left running for the next container-manager");
    manager
      .close({ handover: true })
      .then(() => artifactServer?.close())
      .then(() => metricsServer.close())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "error during handover");
          process.exit(1);
        },
      );
  });
  logger.info(
    {
      port: manager.server.port,
      metricsPort: metricsServer.port,
      artifactsPort: artifactServer?.port,
      registry: config.registry,
      dataDir: config.dataDir,
      replicaUser: replicaUser?.name,
      pythonEnvInstaller,
    },
    "listening",
  );
}

async function startKubernetesBackend(
  config: {
    kubeconfig: string;
    namespace: string;
    clusterName: string;
    image: string;
    modelNodeSelector: Record<string, string>;
    modelTolerations: ReturnType<typeof parseTolerations>;
    artifactsUrl: string;
    artifactsTokenSecret: { name: string; key: string } | undefined;
  },
  logger: Logger,
) {
  const kubeConfig = new KubeConfig();
  if (config.kubeconfig !== "") kubeConfig.loadFromFile(config.kubeconfig);
  else kubeConfig.loadFromDefault();
  const namespace = config.namespace !== "" ? config.namespace : (kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? "default");
  const backend = new KubernetesBackend({
    kubeConfig,
    namespace,
    clusterName: config.clusterName,
    image: config.image,
    nodeSelector: config.modelNodeSelector,
    tolerations: config.modelTolerations,
    artifactsUrl: config.artifactsUrl,
    artifactsTokenSecret: config.artifactsTokenSecret,
    logger,
  });
  // Adopts the Deployments this cluster name's labels mark, then watches their pods.
  await backend.startWatching();
  logger.info(
    { namespace, cluster: config.clusterName, server: kubeConfig.getCurrentCluster()?.server, artifactsUrl: config.artifactsUrl },
    "kubernetes backend watching",
  );
  return backend;
}

async function startContainerEngineBackend(
  config: {
    dockerSocket: string;
    image: string;
    clusterName: string;
    dataDir: string;
    replicaMemoryLimitBytes: number;
    replicaCpus: number;
    replicaPidsLimit: number;
    stopGraceMs: number;
  },
  logger: Logger,
) {
  const backend = new ContainerEngineBackend({
    socketPath: config.dockerSocket,
    image: config.image,
    clusterName: config.clusterName,
    dataDir: config.dataDir,
    logger,
    defaultResources: { memoryBytes: config.replicaMemoryLimitBytes, nanoCpus: Math.round(config.replicaCpus * 1e9), pidsLimit: config.replicaPidsLimit },
    stopGraceMs: config.stopGraceMs,
  });
  const engine = await backend.checkEngine();
  // Takes over this cluster's running containers a previous container-manager left, removes its other ones.
  const adoption = await backend.adoptRunningContainers();
  logger.info(
    { engine, socket: config.dockerSocket, image: config.image, cluster: config.clusterName, adopted: adoption.adopted.length },
    "container backend ready",
  );
  return backend;
}

/** `name:key` (key default `token`): a Secret's key, as --artifacts-token-secret names it. */
function parseSecretKey(raw: string): { name: string; key: string } | undefined {
  if (raw === "") return undefined;
  const [name = "", key = "token", ...rest] = raw.split(":");
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name) || !/^[-._a-zA-Z0-9]{1,253}$/.test(key) || rest.length > 0) {
    throw new Error(`expected a Secret's name:key (key default token), e.g. clipper-artifacts-token:token, got "${raw}"`);
  }
  return { name, key };
}

main().catch(exitOnStartupError);
