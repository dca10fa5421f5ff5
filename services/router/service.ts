import type { ServiceImpl } from "@connectrpc/connect";
import { QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import type { FeedbackRecorder } from "./feedback.js";
import type { QueryProcessor } from "./query-processor.js";
import type { RouterMetrics } from "./router-metrics.js";

export interface QueryServiceDeps {
  processor: QueryProcessor;
  feedback: FeedbackRecorder;
  metrics: RouterMetrics;
}

/** clipper.v1.QueryService: thin handlers over the QueryProcessor. */
export function createQueryServiceImpl(deps: QueryServiceDeps): ServiceImpl<typeof QueryService> {
  return {
    async query(req, ctx) {
      const timeoutMs = ctx.timeoutMs();
      const answers = await deps.processor.query(req.application, req.inputs, {
        version: req.version,
        uid: req.uid,
        signal: ctx.signal,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      });
      return {
        results: answers.map((a) => ({
          queryId: a.queryId,
          output: a.output,
          default: a.isDefault,
          defaultExplanation: a.explanation,
          models: a.models,
          confidence: a.confidence,
        })),
      };
    },
    async submitFeedback(req) {
      const { accepted, joined } = await deps.feedback.submit(req.application, req.inputs, req.labels, req.uid);
      deps.metrics.countFeedback(req.application, accepted);
      return { accepted, joined };
    },
  };
}
