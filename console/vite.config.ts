// The console's page. `clipper up` builds it into dist/console-ui (services/build.ts); `npx vite console`
// serves it with live reload, its API proxied to a console on the default port.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    target: "es2022",
    // No source maps: the page ships with the system and is served from memory.
    sourcemap: false,
    chunkSizeWarningLimit: 200,
  },
  server: { host: "127.0.0.1", proxy: { "/api": "http://127.0.0.1:1341" } },
});
