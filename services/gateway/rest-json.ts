import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import { inputTypeName, numberProblem, stringProblem } from "../shared/index.js";

/** A REST failure: HTTP status, a short error and its cause, sent as `{"error", "cause"}` (and `correlation_id` for an internal error). */
export class RestError extends Error {
  override name = "RestError";
  constructor(
    readonly status: number,
    readonly error: string,
    readonly causeText: string,
    /** For an internal error: the id its cause is logged under. */
    readonly correlationId?: string,
  ) {
    super(`${error}: ${causeText}`);
  }

  body(): { error: string; cause: string; correlation_id?: string } {
    return { error: this.error, cause: this.causeText, ...(this.correlationId === undefined ? {} : { correlation_id: this.correlationId }) };
  }
}

const invalid = (cause: string) => new RestError(400, "invalid request", cause);

export interface RestPredictRequest {
  inputs: Inputs;
  /** Whether the body used `input_batch` (the answer is then `batch_predictions`). */
  batch: boolean;
  version: string;
  uid: string;
}

export interface RestFeedbackRequest {
  inputs: Inputs;
  label: string;
  uid: string;
}

export interface RestParseOptions {
  /** Accept numeric batches whose inputs have different lengths. */
  allowRaggedBatch: boolean;
}

/** Parses a request body as a JSON object; 400 when it is not one. */
export function parseJsonObject(text: string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new RestError(400, "malformed JSON", (err as Error).message);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid("the body must be a JSON object");
  return body as Record<string, unknown>;
}

/** `{"input": ...}` or `{"input_batch": [...]}`, with optional "version" and "uid", as packed inputs of the app's type. */
export function parsePredictBody(body: Record<string, unknown>, type: InputType, options: RestParseOptions): RestPredictRequest {
  const hasInput = body.input !== undefined;
  const hasBatch = body.input_batch !== undefined;
  if (hasInput && hasBatch) throw invalid('send either "input" or "input_batch", not both');
  if (!hasInput && !hasBatch) throw invalid('input is missing: send "input" or "input_batch"');
  const common = { version: optionalString(body, "version"), uid: optionalId(body, "uid") };
  if (hasInput) return { inputs: packInputs([body.input], type, ["input"], options), batch: false, ...common };
  const batch = body.input_batch;
  if (!Array.isArray(batch)) throw invalid("input_batch is not an array");
  if (batch.length === 0) throw invalid("input_batch is empty: send at least one input");
  const fields = batch.map((_, i) => `input_batch[${i}]`);
  return { inputs: packInputs(batch, type, fields, options), batch: true, ...common };
}

/** `{"uid", "input", "label"}`; a label that is not a string is kept as its JSON text. */
export function parseFeedbackBody(body: Record<string, unknown>, type: InputType): RestFeedbackRequest {
  if (body.input === undefined) throw invalid("input is missing");
  const label = body.label;
  if (label === undefined || label === null) throw invalid("label is missing");
  return {
    inputs: packInputs([body.input], type, ["input"], { allowRaggedBatch: true }),
    label: checkedText("label", typeof label === "string" ? label : JSON.stringify(label)),
    uid: optionalId(body, "uid"),
  };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Converts JSON inputs to one packed batch; `fields` names each input in error messages. */
export function packInputs(values: readonly unknown[], type: InputType, fields: readonly string[], options: RestParseOptions): Inputs {
  const field = (i: number) => fields[i] ?? `input[${i}]`;
  switch (type) {
    case InputType.STRINGS:
      return create(InputsSchema, {
        type,
        strings: values.map((v, i) => {
          if (typeof v !== "string") throw invalid(`${field(i)} is not a string: the application expects strings`);
          const problem = stringProblem(v);
          if (problem !== undefined) throw invalid(`${field(i)} ${problem}`);
          return v;
        }),
      });
    case InputType.BYTES:
      return create(InputsSchema, {
        type,
        bytes: values.map((v, i) => {
          if (typeof v !== "string" || !BASE64.test(v)) throw invalid(`${field(i)} is not a base64 string: the application expects bytes`);
          return Buffer.from(v, "base64");
        }),
      });
    case InputType.INTS:
    case InputType.FLOATS:
    case InputType.DOUBLES: {
      const lengths: number[] = [];
      const packed: number[] = [];
      values.forEach((v, i) => {
        if (!Array.isArray(v)) throw invalid(`${field(i)} is not an array of numbers: the application expects ${inputTypeName(type)}`);
        if (v.length === 0) throw invalid(`${field(i)} is empty: an input needs at least one value`);
        const first = lengths[0];
        if (!options.allowRaggedBatch && first !== undefined && v.length !== first) {
          throw invalid(`${field(i)} has ${v.length} values but ${field(0)} has ${first}: all inputs of a batch must have the same length`);
        }
        v.forEach((x: unknown, j) => {
          const problem = numberProblem(type, x);
          if (problem !== undefined) throw invalid(`${field(i)}[${j}] ${problem}`);
          packed.push(x as number);
        });
        lengths.push(v.length);
      });
      const inputs = create(InputsSchema, { type, lengths });
      if (type === InputType.INTS) inputs.ints = packed;
      else if (type === InputType.FLOATS) inputs.floats = packed;
      else inputs.doubles = packed;
      return inputs;
    }
    default:
      throw new RestError(500, "misconfigured application", `the application's input type is ${inputTypeName(type)}`);
  }
}

function optionalString(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw invalid(`${key} is not a string`);
  return checkedText(key, v);
}

/** A string of the body that is not valid UTF-8 is refused, not passed on with U+FFFD in place of its bytes. */
function checkedText(key: string, v: string): string {
  const problem = stringProblem(v);
  if (problem !== undefined) throw invalid(`${key} ${problem}`);
  return v;
}

/** Clipper's uid was a number; a string is accepted too. */
function optionalId(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return checkedText(key, v);
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw invalid(`${key} is not a string or a number`);
}

export interface RestPrediction {
  query_id: number;
  output: unknown;
  default: boolean;
  default_explanation?: string;
  /** The model versions whose answers make the output (absent for a default). */
  models?: string[];
  /** The selection policy's weight behind the output, in [0, 1] (absent for a default). */
  confidence?: number;
}

/** Clipper's JSON for one answer: the output as JSON when it parses, else the string itself. */
export function restPrediction(result: QueryResult): RestPrediction {
  const out: RestPrediction = { query_id: Number(result.queryId), output: parseOutput(result.output), default: result.default };
  if (result.default) out.default_explanation = result.defaultExplanation;
  else if (result.models.length > 0) {
    out.models = result.models;
    out.confidence = result.confidence;
  }
  return out;
}

export function parseOutput(output: string): unknown {
  try {
    return JSON.parse(output);
  } catch {
    return output;
  }
}
