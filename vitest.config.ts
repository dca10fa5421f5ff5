import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

// Two projects: "unit" (pure code beside the sources: no process, no socket; seconds) and
// "integration" (*.integration.test.ts beside the sources, and everything in test/: real
// processes, gRPC over loopback, Redis). `npm run test:unit` runs the first alone; .ci/run runs both.
// test/architecture checks the import rules by reading the sources (no process): unit, but for
// its *.integration.test.ts, which checks the checker against esbuild's parser and git.
const UNIT = ["services/**/*.test.ts", "console/src/**/*.test.ts", "sdk/typescript/src/**/*.test.ts", "cli/**/*.test.ts", "test/architecture/**/*.test.ts"];
const INTEGRATION = ["**/*.integration.test.ts", "test/**/*.test.ts", "bench/loadgen/**/*.test.ts"];
const INTEGRATION_EXCLUDE = ["test/architecture/**/!(*.integration).test.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Vitest's default is one worker per core but one: a single worker on a 2-core machine, where the
    // integration files spend most of their time waiting on the processes they start. Two halve the run
    // (every test starts its processes on free ports and names its own clusters, containers and dirs).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      { extends: true, test: { name: "unit", include: UNIT, exclude: ["**/*.integration.test.ts", "**/node_modules/**"] } },
      { extends: true, test: { name: "integration", include: INTEGRATION, exclude: ["**/node_modules/**", ...INTEGRATION_EXCLUDE] } },
    ],
  },
});
