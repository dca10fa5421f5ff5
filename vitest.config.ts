import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["services/**/*.test.ts", "sdk/typescript/**/*.test.ts", "cli/**/*.test.ts", "test/**/*.test.ts", "bench/loadgen/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
