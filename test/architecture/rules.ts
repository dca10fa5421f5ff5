/**
 * What may import what, as data. checkRules (check.ts) reports an import when the importing file
 * matches a rule's `files` (and none of its `exceptFiles`), the import's target matches one of
 * its `targets`, and the target matches none of its `allowed` patterns. Patterns: path-pattern.ts.
 * `{svc}` in `allowed` is the folder captured from the importing file. Every rule applies on its
 * own; the `exceptFiles` keep the service rules from overlapping.
 *
 * Targets in `targets: ["**"]` are repository files only: npm packages and node builtins are
 * always allowed except where a rule names them (`node:...`). Type-only imports count (a type
 * import still couples two modules' sources) unless a rule says `typeOnlyCounts: false`.
 */
export interface ImportRule {
  readonly id: string;
  /** One line, printed with every violation. */
  readonly reason: string;
  readonly files: readonly string[];
  readonly exceptFiles?: readonly string[];
  readonly targets: readonly string[];
  readonly allowed?: readonly string[];
  readonly typeOnlyCounts?: boolean;
}

/** Folders under services/ that only compose services (no service of their own): they may use front doors. */
export const COMPOSITION_ONLY_FOLDERS = ["edge"] as const;

const compositionFolders = COMPOSITION_ONLY_FOLDERS.map((f) => `services/{svc=${f}}/**`);
const compositionFoldersPlain = COMPOSITION_ONLY_FOLDERS.map((f) => `services/${f}/**`);
const FRONT_DOORS = "services/*/index.ts";

export const RULES: readonly ImportRule[] = [
  {
    id: "service-boundary",
    reason: "a service imports only its own folder, services/shared/index.ts and gen/",
    files: ["services/{svc}/**"],
    exceptFiles: ["services/shared/**", "services/*/main.ts", "services/**/*.test.ts", ...compositionFoldersPlain],
    targets: ["**"],
    allowed: ["services/{svc}/**", "services/shared/index.ts", "gen/**"],
  },
  {
    id: "composition-root",
    reason:
      "a composition root (services/<svc>/main.ts, a composition-only folder) imports its own folder, gen/ and services only through their front doors services/<svc>/index.ts",
    files: ["services/{svc}/main.ts", ...compositionFolders],
    exceptFiles: ["services/shared/**", "services/**/*.test.ts"],
    targets: ["**"],
    allowed: ["services/{svc}/**", "gen/**", FRONT_DOORS],
  },
  {
    id: "service-tests",
    reason:
      "a test beside a service imports its own folder, gen/, and other services only through their front doors services/<svc>/index.ts and their testing/ folders",
    files: ["services/{svc}/**/*.test.ts"],
    exceptFiles: ["services/shared/**"],
    targets: ["**"],
    allowed: ["services/{svc}/**", "gen/**", FRONT_DOORS, "services/*/testing/**"],
  },
  {
    id: "shared-boundary",
    reason: "services/shared is beneath every service: it imports only itself and gen/, never a service",
    files: ["services/shared/**"],
    targets: ["**"],
    allowed: ["services/shared/**", "gen/**"],
  },
  {
    id: "build-script",
    reason: "services/build.ts bundles the services and imports none of their code",
    files: ["services/build.ts"],
    targets: ["services/**"],
  },
  {
    id: "sdk-independent",
    reason: "the SDKs are packages of their own: they never import services/ or cli/",
    files: ["sdk/**"],
    targets: ["services/**", "cli/**"],
  },
  {
    id: "cli-front-doors",
    reason: "the CLI imports its own folder, gen/, services/build.ts and services only through their front doors services/<svc>/index.ts",
    files: ["cli/**"],
    targets: ["**"],
    allowed: ["cli/**", "gen/**", FRONT_DOORS, "services/build.ts"],
  },
  {
    id: "test-front-doors",
    reason:
      "tests and benchmarks reach services only through their front doors services/<svc>/index.ts, their testing/ folders and services/build.ts, and the SDK through sdk/typescript/src/index.ts",
    files: ["test/**", "bench/**"],
    targets: ["services/**", "sdk/**"],
    allowed: [FRONT_DOORS, "services/*/testing/**", "services/build.ts", "sdk/typescript/src/index.ts"],
  },
  {
    id: "unit-tests-stay-unit",
    reason:
      "a unit test starts no process and opens no socket: child processes, cluster, net/http/http2/https/tls/dgram and composition roots (main.ts) belong in *.integration.test.ts",
    files: ["services/**/*.test.ts", "cli/**/*.test.ts", "sdk/**/*.test.ts", "test/architecture/**/*.test.ts"],
    exceptFiles: ["**/*.integration.test.ts"],
    targets: ["node:child_process", "node:cluster", "node:net", "node:http", "node:http2", "node:https", "node:tls", "node:dgram", "**/main.ts"],
    typeOnlyCounts: false,
  },
];

/** Rules that are not about one import. */
export const NO_CYCLES = {
  id: "no-cycles",
  reason: "modules in a cycle can be neither understood, tested nor loaded alone (type-only imports count too)",
} as const;

export const RESOLVABLE = {
  id: "resolvable",
  reason: "a relative import names a file of the repository",
} as const;
