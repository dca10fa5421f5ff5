/**
 * A parser of the Prometheus text exposition format (version 0.0.4), the
 * format every service's /metrics answers. Only samples are kept: the
 * console computes from values and labels, and HELP/TYPE lines tell it
 * nothing the metric names do not.
 */

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

export class MetricsTextError extends Error {
  override name = "MetricsTextError";
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses a whole exposition; throws MetricsTextError naming the line of the first malformed sample. */
export function parseMetricsText(text: string, maxSamples: number): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    if (samples.length >= maxSamples) throw new MetricsTextError(`more than ${maxSamples} samples`);
    try {
      samples.push(parseSampleLine(line));
    } catch (err) {
      throw new MetricsTextError(`line ${i + 1}: ${(err as Error).message}: ${line.slice(0, 120)}`);
    }
  }
  return samples;
}

function parseSampleLine(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error("expected a metric name");
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = parseLabels(rest.slice(1), labels);
  }
  const fields = rest.trim().split(/\s+/);
  const raw = fields[0];
  if (raw === undefined || raw === "" || fields.length > 2) throw new Error("expected a value and at most a timestamp");
  return { name, labels, value: parseValue(raw) };
}

/** Reads `a="x",b="y"}` into labels; returns what follows the closing brace. */
function parseLabels(text: string, labels: Record<string, string>): string {
  let rest = text.trimStart();
  while (!rest.startsWith("}")) {
    const labelName = LABEL_NAME.exec(rest)?.[0];
    if (labelName === undefined) throw new Error("expected a label name");
    rest = rest.slice(labelName.length).trimStart();
    if (!rest.startsWith('="')) throw new Error(`expected ="..." after label ${labelName}`);
    rest = rest.slice(2);
    let value = "";
    let closed = false;
    let j = 0;
    for (; j < rest.length; j++) {
      const c = rest[j];
      if (c === "\\") {
        const next = rest[j + 1];
        value += next === "n" ? "\n" : (next ?? "");
        j++;
      } else if (c === '"') {
        closed = true;
        break;
      } else {
        value += c;
      }
    }
    if (!closed) throw new Error(`unterminated value of label ${labelName}`);
    labels[labelName] = value;
    rest = rest.slice(j + 1).trimStart();
    if (rest.startsWith(",")) rest = rest.slice(1).trimStart();
    else if (!rest.startsWith("}")) throw new Error("expected , or } after a label");
  }
  return rest.slice(1);
}

function parseValue(raw: string): number {
  if (raw === "+Inf" || raw === "Inf") return Number.POSITIVE_INFINITY;
  if (raw === "-Inf") return Number.NEGATIVE_INFINITY;
  if (raw === "NaN") return Number.NaN;
  const value = Number(raw);
  if (raw === "" || Number.isNaN(value)) throw new Error(`"${raw}" is not a number`);
  return value;
}
