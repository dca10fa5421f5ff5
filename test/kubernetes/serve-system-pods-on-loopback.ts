/**
 * For tests in other languages (sdk/python/tests/test_e2e_kubernetes.py): starts startSystemPodsOnLoopback() for one
 * namespace, prints one JSON line (the admin kubeconfig, kubectl, the Redis URL, the pods' data dir), and stops
 * everything when stdin closes or on SIGTERM/SIGINT; the cluster's processes are also killed if this one dies.
 *
 *   node --import tsx test/kubernetes/serve-system-pods-on-loopback.ts --namespace NS
 */
import { parseArgs } from "node:util";
import { startSystemPodsOnLoopback } from "./system-pods-on-loopback.js";

const { values } = parseArgs({ options: { namespace: { type: "string" }, verbose: { type: "boolean" } } });
if (values.namespace === undefined) {
  process.stderr.write("usage: serve-system-pods-on-loopback.ts --namespace NS [--verbose]\n");
  process.exit(2);
}
const verbose = values.verbose === true;
const system = await startSystemPodsOnLoopback({
  namespace: values.namespace,
  log: (line) => {
    if (verbose) process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  },
});
let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= system.stop().then(() => process.exit(0));
  return stopping;
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.resume();
process.stdout.write(
  `${JSON.stringify({
    kubeconfig: system.cluster.kubeconfigPath,
    kubectl: system.cluster.binaries.kubectl,
    server: system.cluster.server,
    redisUrl: system.redis.url,
    dataDir: system.dataDir,
  })}\n`,
);
