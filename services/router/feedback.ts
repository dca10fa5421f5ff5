import type { Inputs } from "../../gen/clipper/common/v1/data_pb.js";
import { type ConfigView, type InputLimits, invalidArgument, notFound, unavailable, validateInputs } from "../shared/index.js";

/**
 * Checks and counts feedback (true labels). Selection policies will consume
 * it; until then it is validated and accepted so clients can send it now.
 */
export class FeedbackRecorder {
  private acceptedTotal = 0;

  constructor(
    /** Undefined until the first snapshot from the registry has arrived. */
    private readonly config: () => ConfigView | undefined,
    private readonly limits: InputLimits,
  ) {}

  /** Returns how many labelled inputs were accepted. */
  submit(application: string, inputs: Inputs | undefined, labels: readonly string[]): number {
    const view = this.config();
    if (view === undefined) throw unavailable("the router has not received the configuration from the registry yet");
    const app = view.applications.get(application);
    if (app === undefined) throw notFound(`application "${application}" not found`);
    const count = validateInputs(inputs, app.inputType, this.limits);
    if (labels.length !== count) throw invalidArgument(`labels has ${labels.length} entries for ${count} inputs: send one label per input`);
    this.acceptedTotal += count;
    return count;
  }

  accepted(): number {
    return this.acceptedTotal;
  }
}
