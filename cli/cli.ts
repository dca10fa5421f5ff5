/**
 * The `clipper` command line: parses argv against the command table, prints
 * help, runs the command with the services' clients, and maps errors to exit
 * statuses (0 ok, 1 failure, 2 usage).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ContainerManagerService } from "../gen/clipper/v1/container_manager_service_pb.js";
import { ManagementService } from "../gen/clipper/v1/management_service_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../services/shared/index.js";
import { CliError } from "./cli-error.js";
import { parseCommandLine } from "./command-line.js";
import { commandHelp, overviewHelp } from "./help-text.js";
import { type CliEnvironment, UsageError, wrapUsage } from "./invocation.js";
import { KubernetesSystem, kubernetesTarget } from "./kubernetes-system.js";
import type { ContainerManagerClient, ManagementClient } from "./management-commands.js";
import { cliClientSecurity } from "./security.js";
import { resolveAddresses, resolveCluster } from "./service-addresses.js";

export type { CliEnvironment } from "./invocation.js";

/** Commands that start, stop or read the processes of a system on this machine: refused with --kubeconfig. */
const LOCAL_ONLY_COMMANDS = new Set(["up", "down", "restart", "clusters", "top"]);

/** Runs the CLI and returns its exit status; never throws. */
export async function runCli(argv: string[], env: CliEnvironment): Promise<number> {
  const transports: GrpcTransport[] = [];
  try {
    const line = parseCommandLine(argv);
    if (line.kind === "overview") {
      env.stdout.write(overviewHelp());
      return 0;
    }
    if (line.kind === "help") {
      env.stdout.write(commandHelp(line.command));
      return 0;
    }
    const { command, values, positionals } = line;
    const cluster = wrapUsage(command, () => resolveCluster(values, env));
    const target = wrapUsage(command, () => kubernetesTarget(values, env.env, cluster.name));
    if (target !== undefined && LOCAL_ONLY_COMMANDS.has(command.name)) {
      throw new CliError(
        `\`clipper ${command.name}\` acts on a system on this machine; on Kubernetes, see docs/kubernetes.md (kubectl, or Python's KubernetesContainerManager)`,
      );
    }
    const kubernetes = target === undefined ? undefined : new KubernetesSystem(target);
    const flag = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
    const addresses =
      kubernetes === undefined
        ? resolveAddresses(values, cluster)
        : await kubernetes.addresses({ registry: flag("registry"), containerManager: flag("container-manager"), gateway: flag("gateway") });
    const security = wrapUsage(command, () =>
      cliClientSecurity((flag, envName) => {
        const v = values[flag];
        return typeof v === "string" && v !== "" ? v : env.env[envName] || undefined;
      }),
    );
    const transport = (address: string) => {
      const t = createGrpcTransport({ address, ...security });
      transports.push(t);
      return t;
    };
    let management: ManagementClient | undefined;
    let containerManager: ContainerManagerClient | undefined;
    return await command.run({
      command,
      values,
      positionals,
      env,
      cluster: cluster.name,
      dataDir: cluster.dataDir,
      addresses,
      kubernetes,
      management: () => (management ??= createClient(ManagementService, transport(addresses.registry))),
      containerManager: () => (containerManager ??= createClient(ContainerManagerService, transport(addresses.containerManager))),
    });
  } catch (err) {
    return reportError(err, env);
  } finally {
    for (const t of transports) t.close();
  }
}

function reportError(err: unknown, env: CliEnvironment): number {
  if (err instanceof UsageError) {
    env.stderr.write(`error: ${err.message}\n\n${err.command === undefined ? overviewHelp() : commandHelp(err.command)}`);
    return 2;
  }
  if (err instanceof ConnectError) {
    env.stderr.write(`error: ${err.rawMessage}\n`);
    if (err.code === Code.Unavailable) env.stderr.write("(is `clipper up` running, and are --registry/--container-manager right?)\n");
    if (err.code === Code.Unauthenticated) env.stderr.write("(pass an API token: --token or $CLIPPER_TOKEN; see docs/security.md)\n");
    return 1;
  }
  if (err instanceof CliError) {
    env.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  env.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
