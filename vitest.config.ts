import { defineConfig } from "vitest/config";

// Two projects: "unit" (pure code beside the sources: no process, no socket; seconds) and
// "integration" (*.integration.test.ts beside the sources, and everything in test/: real
// processes, gRPC over loopback, Redis). `npm run test:unit` runs the first alone; .ci/run runs both.
const UNIT = ["services/**/*.test.ts", "sdk/typescript/**/*.test.ts", "cli/**/*.test.ts"];
const INTEGRATION = ["**/*.integration.test.ts", "test/**/*.test.ts", "bench/loadgen/**/*.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    projects: [
      { extends: true, test: { name: "unit", include: UNIT, exclude: ["**/*.integration.test.ts", "**/node_modules/**"] } },
      { extends: true, test: { name: "integration", include: INTEGRATION, exclude: ["**/node_modules/**"] } },
    ],
  },
});
