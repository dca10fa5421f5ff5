// The `clipper` executable's composition root: the real process's streams, environment and signals.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./cli.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  repoRoot,
});
