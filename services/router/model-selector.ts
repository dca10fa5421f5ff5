import type { Application } from "../../gen/clipper/v1/resources_pb.js";
import type { ConfigView } from "../shared/index.js";

/**
 * Chooses which linked model answers a query. The first implementation takes
 * the first link; selection policies (Exp3, epsilon-greedy, ...) replace it.
 */
export interface ModelSelector {
  /** The model name, or undefined when the application has no usable link. */
  select(application: Application, view: ConfigView, uid: string): string | undefined;
}

export class FirstLinkedModelSelector implements ModelSelector {
  select(application: Application): string | undefined {
    return application.linkedModels[0];
  }
}
