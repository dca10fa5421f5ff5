// The conformance kit's model for the TypeScript runtime (the contract: test/conformance/README.md).
//
//   CLIPPER_MODEL_MODULE=test/conformance/models/conformance-model.ts node --import tsx sdk/typescript/src/runner.ts
//
// Each input is answered with a JSON object: numeric inputs {"n": count, "sum": sum}, strings
// {"n": UTF-8 bytes, "echo": text}, bytes {"n": count, "sum": sum of the bytes}. Directives (a string
// or bytes "!fail", "!wrong-count", "!wrong-type", "!sleep:MS"; a numeric input [-999, code, ms] with
// code 1, 2, 3, 4) make the batch raise, answer one output too few, answer a non-string for that
// input, or sleep. CLIPPER_CONFORMANCE_LOAD_MS makes loading slow.
import type { ModelInput } from "../../../sdk/typescript/src/index.js";

const MAGIC = -999;
const CODES: Record<number, string> = { 1: "fail", 2: "wrong-count", 3: "wrong-type", 4: "sleep" };

const loadMs = Number(process.env.CLIPPER_CONFORMANCE_LOAD_MS ?? "0") || 0;
process.stderr.write(`conformance-model: loading ${loadMs} ms\n`);
await new Promise((resolve) => setTimeout(resolve, loadMs));
process.stderr.write("conformance-model: loaded\n");

type Directive = { kind: string; ms: number };

function directiveOf(x: ModelInput): Directive | undefined {
  if (typeof x === "string" || x instanceof Uint8Array) {
    const text = typeof x === "string" ? x : new TextDecoder().decode(x);
    if (!text.startsWith("!")) return undefined;
    if (text.startsWith("!sleep:")) return { kind: "sleep", ms: Number(text.slice(7)) };
    return { kind: text.slice(1), ms: 0 };
  }
  if (x.length < 2 || x[0] !== MAGIC) return undefined;
  const kind = CODES[x[1] ?? 0];
  return kind === undefined ? undefined : { kind, ms: x[2] ?? 0 };
}

function answer(x: ModelInput): string {
  if (typeof x === "string") return JSON.stringify({ n: Buffer.byteLength(x, "utf8"), echo: x });
  let sum = 0;
  for (const v of x) sum += v;
  return JSON.stringify({ n: x.length, sum });
}

export default async function predict(inputs: ModelInput[]): Promise<string[]> {
  const outputs: unknown[] = [];
  let sleepMs = 0;
  let fail = false;
  let wrongCount = false;
  for (const x of inputs) {
    const d = directiveOf(x);
    if (d === undefined) outputs.push(answer(x));
    else if (d.kind === "fail") {
      fail = true;
      outputs.push("{}");
    } else if (d.kind === "wrong-count") {
      wrongCount = true;
      outputs.push("{}");
    } else if (d.kind === "wrong-type") outputs.push(42);
    else if (d.kind === "sleep") {
      sleepMs = Math.max(sleepMs, d.ms);
      outputs.push(JSON.stringify({ slept: d.ms }));
    } else outputs.push(answer(x));
  }
  if (sleepMs > 0) await new Promise((resolve) => setTimeout(resolve, sleepMs));
  if (fail) throw new Error("conformance model: asked to fail");
  if (wrongCount) outputs.pop();
  // A number among the strings is the point of "!wrong-type": the runtime must make it that input's error.
  return outputs as string[];
}
