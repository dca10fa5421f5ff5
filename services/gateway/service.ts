import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { PredictionService } from "../../gen/clipper/v1/prediction_service_pb.js";
import type { QueryResult } from "../../gen/clipper/v1/query_service_pb.js";
import type { Application } from "../../gen/clipper/v1/resources_pb.js";
import { cancelSignalOf, invalidArgument } from "../shared/index.js";
import { errorOutcome, type GatewayMetrics, type Protocol } from "./gateway-metrics.js";
import { packInput } from "./grpc-inputs.js";
import type { Predictor } from "./predictor.js";

const toPrediction = (r: QueryResult) => ({
  queryId: r.queryId,
  output: r.output,
  default: r.default,
  defaultExplanation: r.defaultExplanation,
  models: r.models,
  confidence: r.confidence,
});

/** clipper.v1.PredictionService for gRPC, Connect and gRPC-Web alike. */
export function createPredictionServiceImpl(predictor: Predictor, metrics: GatewayMetrics): ServiceImpl<typeof PredictionService> {
  /** Looks the application up, runs a handler body for it, and records its outcome under the application's name. */
  async function measured<T>(application: string, ctx: HandlerContext, run: (app: Application) => Promise<{ value: T; outcome: string }>): Promise<T> {
    const startedAt = performance.now();
    const protocol = ctx.protocolName as Protocol;
    let label = "unknown";
    try {
      const app = predictor.application(application);
      label = application;
      const { value, outcome } = await run(app);
      metrics.observe(label, protocol, outcome, startedAt);
      return value;
    } catch (err) {
      metrics.observe(label, protocol, errorOutcome(err), startedAt);
      throw err;
    }
  }
  const callOptions = (version: string, uid: string, ctx: HandlerContext) => ({ version, uid, timeoutMs: ctx.timeoutMs(), signal: cancelSignalOf(ctx) });

  return {
    predict(req, ctx) {
      return measured(req.application, ctx, async (app) => {
        const [result] = await predictor.query(app.name, packInput(req.input, app.inputType), callOptions(req.version, req.uid, ctx));
        return { value: { prediction: result ? toPrediction(result) : {} }, outcome: result?.default ? "default" : "ok" };
      });
    },
    predictBatch(req, ctx) {
      return measured(req.application, ctx, async (app) => {
        if (req.inputs === undefined) throw invalidArgument("inputs is missing");
        // The router checks the packed batch against the application's type, its limits and its values (validateInputs).
        const results = await predictor.query(app.name, req.inputs, callOptions(req.version, req.uid, ctx));
        return { value: { predictions: results.map(toPrediction) }, outcome: results.some((r) => r.default) ? "default" : "ok" };
      });
    },
    feedback(req, ctx) {
      return measured(req.application, ctx, async (app) => {
        const accepted = await predictor.feedback(app.name, packInput(req.input, app.inputType), [req.label], req.uid, cancelSignalOf(ctx));
        return { value: { accepted: accepted > 0 }, outcome: "ok" };
      });
    },
  };
}
