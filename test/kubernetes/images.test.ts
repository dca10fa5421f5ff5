/**
 * The Dockerfiles of deploy/images, checked for structure: no image can be built or pulled on these
 * machines (no container engine, no registry; hadolint is not available either), so this reads them
 * and checks what a reviewer would: multi-stage with pinned bases, a non-root numeric user in the final
 * stage, no package manager run there, every COPY source in the repository and admitted by the
 * Dockerfile's own .dockerignore, the services' bundles built, and the model runtime's paths being
 * those the kubernetes backend's launch expects. It does not show that the images build or run.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUNDLED_SERVICES } from "../../services/build.js";
import { DEFAULT_KUBERNETES_OPTIONS } from "../../services/container-manager/index.js";
import { repoRoot } from "../system.js";

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

interface Dockerfile {
  firstLine: string;
  args: Map<string, string>;
  stages: Stage[];
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
function parseDockerfile(text: string): Dockerfile {
  const lines = text.split("\n");
  const instructions: Instruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let joined = lines[i] ?? "";
    if (/^\s*(#|$)/.test(joined)) continue;
    while (joined.endsWith("\\") && i + 1 < lines.length) {
      i++;
      joined = `${joined.slice(0, -1)} ${(lines[i] ?? "").trim()}`;
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(joined);
    if (match === null) throw new Error(`line ${start + 1}: not an instruction: ${joined}`);
    instructions.push({ keyword: (match[1] ?? "").toUpperCase(), args: (match[2] ?? "").trim(), line: start + 1 });
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const from = /^(\S+)\s+AS\s+(\S+)$/i.exec(instruction.args);
      if (from === null) throw new Error(`line ${instruction.line}: every stage is named (FROM image AS name): ${instruction.args}`);
      stages.push({ base: from[1] ?? "", name: from[2] ?? "", instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== "ARG") throw new Error(`line ${instruction.line}: only ARG may precede the first FROM`);
      const arg = /^([A-Z_]+)=(\S+)$/.exec(instruction.args);
      if (arg !== null) args.set(arg[1] ?? "", arg[2] ?? "");
    } else {
      stages[stages.length - 1]?.instructions.push(instruction);
    }
  }
  return { firstLine: lines[0] ?? "", args, stages };
}

/** The .dockerignore beside a Dockerfile (BuildKit reads <Dockerfile>.dockerignore): whether it admits a path. */
function admittedBy(dockerignore: string, path: string): boolean {
  let admitted = true;
  for (const raw of dockerignore.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negated = line.startsWith("!");
    const pattern = negated ? line.slice(1) : line;
    if (globMatches(pattern, path)) admitted = negated;
  }
  return admitted;
}

function globMatches(pattern: string, path: string): boolean {
  const regex = pattern
    .split("**")
    .map((part) =>
      part
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join("[^/]*"),
    )
    .join(".*");
  // A directory pattern admits what is under it.
  return new RegExp(`^${regex.replace(/\/\.\*$/, "(/.*)?")}(/.*)?$`).test(path);
}

function loadImage(name: string): { file: Dockerfile; text: string; dockerignore: string } {
  const path = join(repoRoot, "deploy", "images", name);
  const text = readFileSync(path, "utf8");
  const ignorePath = `${path}.dockerignore`;
  expect(existsSync(ignorePath), `${name} has its own .dockerignore (the context is the repository root)`).toBe(true);
  return { file: parseDockerfile(text), text, dockerignore: readFileSync(ignorePath, "utf8") };
}

/** What every image here must be: multi-stage, pinned, non-root, no package manager in the final stage. */
function checkCommonStructure(name: string, file: Dockerfile, dockerignore: string): Stage {
  expect(file.firstLine, `${name}: a syntax directive first`).toMatch(/^# syntax=docker\/dockerfile:1/);
  expect(file.stages.length, `${name}: multi-stage`).toBeGreaterThanOrEqual(2);
  const names = new Set<string>();
  for (const stage of file.stages) {
    const base = stage.base.replace(/^\$\{([A-Z_]+)\}$/, (_, arg: string) => file.args.get(arg) ?? `<ARG ${arg} without a default>`);
    // A base pinned to a full version (x.y.z), never latest or a bare major.
    expect(base, `${name}: stage ${stage.name}'s base is pinned`).toMatch(/^[a-z0-9./-]+:\d+\.\d+\.\d+[-a-z0-9.]*$/);
    for (const copy of stage.instructions.filter((i) => i.keyword === "COPY")) {
      const from = /--from=(\S+)/.exec(copy.args)?.[1];
      if (from !== undefined) {
        expect(names.has(from), `${name}:${copy.line}: COPY --from=${from} names an earlier stage`).toBe(true);
        continue;
      }
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(repoRoot, source)), `${name}:${copy.line}: COPY source ${source} exists in the repository`).toBe(true);
        expect(admittedBy(dockerignore, source), `${name}:${copy.line}: COPY source ${source} is admitted by the .dockerignore`).toBe(true);
      }
    }
    names.add(stage.name);
  }
  const final = file.stages[file.stages.length - 1];
  if (final === undefined) throw new Error(`${name}: no stage`);
  const users = final.instructions.filter((i) => i.keyword === "USER");
  const user = users[users.length - 1];
  expect(user, `${name}: the final stage sets USER`).toBeDefined();
  const uid = /^(\d+)(:(\d+))?$/.exec(user?.args ?? "");
  expect(uid, `${name}: USER is numeric (runAsNonRoot checks a number, not a name)`).not.toBeNull();
  expect(Number(uid?.[1]), `${name}: USER is not root`).toBeGreaterThan(0);
  const afterUser = final.instructions.slice(final.instructions.indexOf(user as Instruction) + 1);
  expect(
    afterUser.filter((i) => i.keyword === "RUN"),
    `${name}: nothing runs as root after USER`,
  ).toEqual([]);
  for (const run of final.instructions.filter((i) => i.keyword === "RUN")) {
    expect(run.args, `${name}:${run.line}: no package manager in the final stage (its caches and tools stay in earlier stages)`).not.toMatch(
      /\b(npm|pip|apt-get|apk)\b/,
    );
  }
  expect(
    final.instructions.some((i) => i.keyword === "CMD" || i.keyword === "ENTRYPOINT"),
    `${name}: the final stage says what it runs`,
  ).toBe(true);
  return final;
}

describe("deploy/images (structure only: nothing can be built here)", () => {
  it("services.Dockerfile: one image running any service from its bundle dist/<service>/main.mjs", () => {
    const { file, text, dockerignore } = loadImage("services.Dockerfile");
    const final = checkCommonStructure("services.Dockerfile", file, dockerignore);
    // The Node of the base is the major the project supports and is tested on here.
    expect(file.args.get("NODE_IMAGE")).toMatch(new RegExp(`^node:${process.versions.node.split(".")[0]}\\.`));
    for (const service of BUNDLED_SERVICES) expect(text, `the build checks dist/${service}/main.mjs`).toContain(`test -f dist/${service}/main.mjs`);
    const workdir = final.instructions.find((i) => i.keyword === "WORKDIR")?.args;
    expect(workdir).toBe("/opt/clipper");
    const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
    expect(copies).toContain("--from=build /src/dist dist");
    expect(copies).toContain("--from=deps /src/node_modules node_modules");
    // The production dependencies come from a stage that omits the dev ones.
    const deps = file.stages.find((s) => s.name === "deps");
    expect(deps?.instructions.some((i) => i.keyword === "RUN" && i.args.includes("--omit=dev"))).toBe(true);
  });

  it("python-runtime.Dockerfile: the paths and packages the kubernetes backend's launch expects", () => {
    const { file, text, dockerignore } = loadImage("python-runtime.Dockerfile");
    const final = checkCommonStructure("python-runtime.Dockerfile", file, dockerignore);
    const paths = DEFAULT_KUBERNETES_OPTIONS.imagePaths;
    const sdk = `${paths.repoRoot}/sdk/python/src`;
    const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
    expect(copies).toContain(`--from=build ${sdk} ${sdk}`);
    const env = final.instructions
      .filter((i) => i.keyword === "ENV")
      .map((i) => i.args)
      .join(" ");
    expect(env).toContain("PATH=/opt/venv/bin:$PATH");
    expect(env).toContain(`PYTHONPATH=${sdk}`);
    // `python3` (the backend's interpreter) is the venv's, on PATH.
    expect(paths.python).toBe("python3");
    expect(text).toContain("python3 -m venv /opt/venv");
    expect(text).toContain(`mkdir -p ${paths.dataDir}/artifacts && chown -R 10001:10001 ${paths.dataDir}`);
    expect(final.instructions.find((i) => i.keyword === "EXPOSE")?.args).toBe(String(DEFAULT_KUBERNETES_OPTIONS.containerPort));
    // The runtime's packages at the versions the SDK's tests run with.
    const pinned = new Map(
      readFileSync(join(repoRoot, "sdk", "python", "requirements-dev.txt"), "utf8")
        .split("\n")
        .map((l) => /^([A-Za-z0-9_.-]+)==(\S+)/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1] ?? "", m[2] ?? ""]),
    );
    const installed = [...text.matchAll(/\b([a-z][a-z0-9_-]*)==([0-9][^\s\\]*)/g)];
    expect(installed.length).toBeGreaterThanOrEqual(5);
    for (const [, pkg = "", version] of installed) expect(`${pkg}==${version}`).toBe(`${pkg}==${pinned.get(pkg)}`);
    for (const needed of ["grpcio", "grpcio-health-checking", "protobuf", "cloudpickle", "numpy"]) {
      expect(
        installed.some((m) => m[1] === needed),
        `installs ${needed}`,
      ).toBe(true);
    }
  });

  it("the .dockerignore check itself admits and refuses as BuildKit would", () => {
    const ignore = "*\n!services/**\nservices/**/*.test.ts\n!package.json\n";
    expect(admittedBy(ignore, "services")).toBe(true);
    expect(admittedBy(ignore, "services/registry/main.ts")).toBe(true);
    expect(admittedBy(ignore, "services/registry/registry.test.ts")).toBe(false);
    expect(admittedBy(ignore, "package.json")).toBe(true);
    expect(admittedBy(ignore, "sdk/python/src")).toBe(false);
  });
});
