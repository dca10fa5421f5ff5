import { defineConfig } from "vitest/config";

// The package's own test run (`npm test` here). The repository's root vitest.config.ts runs the same
// files: src/**/*.test.ts in its "unit" project, src/**/*.integration.test.ts in "integration".
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
