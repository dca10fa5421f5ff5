import type { ServiceImpl } from "@connectrpc/connect";
import type { QueryRequest, QueryResult, QueryService } from "../../gen/clipper/v1/query_service_pb.js";
import type { CancelSignal, Logger } from "../shared/index.js";
import type { FeedbackRecorder } from "./feedback.js";
import type { QueryProcessor } from "./query-processor.js";
import { QueryStreamSession } from "./query-stream.js";
import type { RouterMetrics } from "./router-metrics.js";

export interface QueryServiceDeps {
  processor: QueryProcessor;
  feedback: FeedbackRecorder;
  metrics: RouterMetrics;
  /** Calls open at once on one QueryStream. */
  maxStreamCalls: number;
  logger?: Logger;
}

/** What one Query asks: a QueryRequest's fields. */
export type RouterQuery = Pick<QueryRequest, "application" | "inputs" | "version" | "uid">;

/** One Query: the processor's answers as QueryResults (the unary handler, and a gateway running the router in-process). */
export async function queryResults(
  processor: QueryProcessor,
  req: RouterQuery,
  timeoutMs: number | undefined,
  signal: CancelSignal | undefined,
): Promise<QueryResult[]> {
  const answers = await processor.query(req.application, req.inputs, {
    version: req.version,
    uid: req.uid,
    ...(signal ? { signal } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  return answers.results;
}

/** clipper.v1.QueryService: thin handlers over the QueryProcessor. */
export function createQueryServiceImpl(deps: QueryServiceDeps): ServiceImpl<typeof QueryService> {
  return {
    async query(req, ctx) {
      return { results: await queryResults(deps.processor, req, ctx.timeoutMs(), ctx.signal) };
    },
    queryStream(requests, ctx) {
      const answer = deps.processor.query.bind(deps.processor);
      const options = { maxOpenCalls: deps.maxStreamCalls, ...(deps.logger ? { logger: deps.logger } : {}) };
      return new QueryStreamSession(answer, options, ctx.signal).run(requests);
    },
    async submitFeedback(req) {
      const { accepted, joined, losses } = await deps.feedback.submit(req.application, req.inputs, req.labels, req.uid);
      deps.metrics.countFeedback(req.application, accepted, losses);
      return { accepted, joined };
    },
  };
}
