import type { Application } from "../../../gen/clipper/v1/resources_pb.js";
import { type CancelSignal, Code, type ConfigView, ConnectError, invalidArgument, notFound, resourceExhausted, unavailable } from "../../shared/index.js";
import type { AppKeys } from "../app-keys.js";
import { errorOutcome, type GatewayMetrics } from "../gateway-metrics.js";
import type { Predictor } from "../predictor.js";
import type { InferCall } from "./infer-request.js";
import { checkVersion } from "./models.js";
import {
  checkedDatatype,
  decodeJsonData,
  decodeRaw,
  decodeTypedContents,
  defaultTensor,
  elementCount,
  type InputTensor,
  OUTPUT_NAMES,
  type OutputTensor,
  outputTensor,
  type TensorLimits,
  toClipperInputs,
} from "./tensors.js";

/** Priorities from this number down (Triton: 1 is the highest, 0 the default) are low: shed first under load. */
const LOW_PRIORITY = 2;

export interface OipInferenceOptions {
  predictor: Predictor;
  /** The registry's configuration; undefined until the first snapshot. */
  config: () => ConfigView | undefined;
  metrics: GatewayMetrics;
  /** Per-application prediction keys, checked on every inference as on Clipper's own routes. */
  appKeys: AppKeys | undefined;
  limits: TensorLimits;
}

export interface InferContext {
  protocol: "oip-rest" | "oip-grpc";
  /** The key the caller presented (Authorization: Bearer, X-Clipper-Key). */
  key: string | undefined;
  signal: CancelSignal | undefined;
  /** What is left of the transport's deadline (a gRPC deadline), if any. */
  transportTimeoutMs: number | undefined;
  /** performance.now() when the request arrived: the application's SLO counts from then. */
  receivedAt: number;
}

export interface InferAnswer {
  modelName: string;
  modelVersion: string;
  id: string;
  outputs: Array<{ tensor: OutputTensor; binary: boolean }>;
}

/** An OIP model is a Clipper application: what every OIP transport asks of the gateway. */
export class OipInference {
  constructor(private readonly options: OipInferenceOptions) {}

  view(): ConfigView {
    const view = this.options.config();
    if (view === undefined) throw unavailable("the gateway has not received the configuration from the registry yet");
    return view;
  }

  /** The application a model name names, or NOT_FOUND saying what a model is here. */
  application(model: string): Application {
    try {
      return this.options.predictor.application(model);
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) {
        throw notFound(`model "${model}" not found: an Open Inference Protocol model is a Clipper application, and there is no application "${model}"`);
      }
      throw err;
    }
  }

  /**
   * One inference of `model`: the application is found, the key checked and
   * overload refused before `read` parses (and for HTTP reads) the request,
   * so that a refusal costs little; every outcome is counted in the metrics.
   */
  async infer(model: string, read: () => InferCall | Promise<InferCall>, ctx: InferContext): Promise<InferAnswer> {
    let label = "unknown";
    try {
      const app = this.application(model);
      label = app.name;
      this.options.appKeys?.check(app.name, ctx.key);
      const shed = this.options.predictor.shedReason(app.name);
      if (shed !== undefined) throw resourceExhausted(shed);
      const call = await read();
      checkVersion(this.view(), app, call.version);
      const outputs = this.requestedOutputs(call, app.name);
      const tensor = this.checkedTensor(call, app);
      const inputs = toClipperInputs(tensor, app.inputType, app.name, `input tensor "${tensor.name}"`);
      const timeouts = [call.timeoutMs, ctx.transportTimeoutMs].filter((t): t is number => t !== undefined);
      const results = await this.options.predictor.query(app.name, inputs, {
        version: call.version,
        uid: "",
        timeoutMs: timeouts.length === 0 ? undefined : Math.min(...timeouts),
        signal: ctx.signal,
        receivedAt: ctx.receivedAt,
        lowPriority: call.priority >= LOW_PRIORITY,
      });
      const built = { output: outputTensor(results), default: defaultTensor(results) };
      const answeredVersions = new Set(results.flatMap((r) => r.models.map((m) => m.slice(m.lastIndexOf(":") + 1))));
      this.options.metrics.observe(label, ctx.protocol, results.some((r) => r.default) ? "default" : "ok", ctx.receivedAt);
      return {
        modelName: app.name,
        modelVersion: call.version !== "" ? call.version : answeredVersions.size === 1 ? ([...answeredVersions][0] ?? "") : "",
        id: call.id,
        outputs: outputs.map((o) => ({ tensor: built[o.name], binary: o.binary })),
      };
    } catch (err) {
      this.options.metrics.observe(label, ctx.protocol, errorOutcome(err), ctx.receivedAt);
      throw err;
    }
  }

  private requestedOutputs(call: InferCall, application: string): Array<{ name: (typeof OUTPUT_NAMES)[number]; binary: boolean }> {
    if (call.outputs === undefined) return OUTPUT_NAMES.map((name) => ({ name, binary: call.binaryDataOutput }));
    return call.outputs.map((o) => {
      const name = OUTPUT_NAMES.find((n) => n === o.name);
      if (name === undefined) {
        throw invalidArgument(`unknown output "${o.name}": model "${application}" has outputs ${OUTPUT_NAMES.map((n) => `"${n}"`).join(" and ")}`);
      }
      return { name, binary: o.binary };
    });
  }

  private checkedTensor(call: InferCall, app: Application): InputTensor {
    const { tensor } = call;
    const field = `input tensor "${tensor.name}"`;
    const datatype = checkedDatatype(tensor.datatype, app.inputType, app.name, field);
    const { shape, count } = elementCount(tensor.shape, field, this.options.limits);
    const values =
      tensor.data.kind === "raw"
        ? decodeRaw(datatype, count, tensor.data.raw, field)
        : tensor.data.kind === "typed"
          ? decodeTypedContents(datatype, count, tensor.data.contents, field)
          : decodeJsonData(datatype, count, tensor.data.data, field);
    return { name: tensor.name, datatype, shape, values };
  }
}
