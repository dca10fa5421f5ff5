import { join } from "node:path";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { repoRoot, type TestSystem } from "../system.js";

/** How one REST query ended. status 0: no HTTP answer (connection refused, reset, or the client's timeout). */
export interface Outcome {
  status: number;
  isDefault: boolean;
  output: unknown;
  explanation: string;
  error: string;
  ms: number;
}

/** POSTs a body and never waits longer than `timeoutMs`: a hang shows up as status 0 and error "timeout". */
export async function restQuery(url: string, body: unknown, timeoutMs = 10_000): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const json = (await res.json()) as Record<string, unknown>;
    return {
      status: res.status,
      isDefault: json.default === true,
      output: json.output,
      explanation: String(json.default_explanation ?? ""),
      error: res.ok ? "" : `${String(json.error)}: ${String(json.cause)}`,
      ms: performance.now() - started,
    };
  } catch (err) {
    const error = err instanceof DOMException && err.name === "TimeoutError" ? "timeout" : String(err);
    return { status: 0, isDefault: false, output: undefined, explanation: "", error, ms: performance.now() - started };
  }
}

/** `concurrency` closed loops sending queries until stopped; every outcome is kept. */
export class ClosedLoopLoad {
  readonly outcomes: Outcome[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(send: () => Promise<Outcome>, concurrency: number) {
    this.loops = Array.from({ length: concurrency }, async () => {
      while (this.running) this.outcomes.push(await send());
    });
  }

  /** Outcomes since index `from`. */
  since(from: number): Outcome[] {
    return this.outcomes.slice(from);
  }

  async stop(): Promise<Outcome[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.outcomes;
  }
}

export const faultyModelFile = join(repoRoot, "test", "faults", "fixtures", "faulty-model.ts");

/** A model version served by the faulty-model fixture with the given behaviour (and its arguments, space-separated). */
export function faultyModel(name: string, behaviour: string, desiredReplicas = 1) {
  return {
    name,
    version: "1",
    inputType: InputType.DOUBLES,
    desiredReplicas,
    runtime: {
      kind: {
        case: "command" as const,
        // tsx resolves from the working directory, where node_modules is.
        value: { argv: [process.execPath, "--import", "tsx", faultyModelFile, ...behaviour.split(" ")], env: {}, workingDir: repoRoot },
      },
    },
  };
}

/** Creates an application, deploys a faulty model for it and links them. */
export async function deployApp(system: TestSystem, app: string, behaviour: string, options: { replicas?: number; sloMicros?: bigint } = {}): Promise<void> {
  await system.deployApp(
    app,
    faultyModel(`${app}-model`, behaviour, options.replicas ?? 1),
    options.sloMicros === undefined ? {} : { sloMicros: options.sloMicros },
  );
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
