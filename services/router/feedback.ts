import type { Inputs } from "../../gen/clipper/common/v1/data_pb.js";
import { type ConfigView, type InputLimits, invalidArgument, modelKey, notFound, unavailable, validateInputs } from "../shared/index.js";
import { applicationPolicy, parseArm } from "./application-policy.js";
import type { JoinedFeedback, PolicySelector } from "./model-selector.js";
import { inputKeyBytes } from "./pack-inputs.js";
import type { PredictionCache } from "./prediction-cache.js";

export interface FeedbackResult {
  accepted: number;
  /** Inputs joined with at least one prediction this router made, and learned from. */
  joined: number;
  /** Per model version ("name:version") of the joined outputs: each output's loss against its label. */
  losses: Map<string, number[]>;
}

/**
 * Feedback (true labels) for selection policies. The prediction cache is the
 * join point, as in Clipper's paper: for each input, every arm's output for
 * (model, version the arm resolves to now, input) is looked up there. Models
 * with no cached output are not queried: a bandit learns only from what it
 * chose (Exp3's update assumes that), and feedback stays cheap. Feedback for
 * an input no model answered here (or whose output was evicted, or whose
 * version changed since) is accepted but not learned from.
 */
export class FeedbackRecorder {
  private acceptedTotal = 0;
  private joinedTotal = 0;

  constructor(
    /** Undefined until the first snapshot from the registry has arrived. */
    private readonly config: () => ConfigView | undefined,
    private readonly limits: InputLimits,
    private readonly cache?: PredictionCache,
    private readonly selector?: PolicySelector,
  ) {}

  async submit(application: string, inputs: Inputs | undefined, labels: readonly string[], uid = ""): Promise<FeedbackResult> {
    const view = this.config();
    if (view === undefined) throw unavailable("the router has not received the configuration from the registry yet");
    const app = view.applications.get(application);
    if (app === undefined) throw notFound(`application "${application}" not found`);
    const count = validateInputs(inputs, app.inputType, this.limits);
    if (labels.length !== count) throw invalidArgument(`labels has ${labels.length} entries for ${count} inputs: send one label per input`);
    const losses = new Map<string, number[]>();
    const joined = this.join(view, app.name, inputs as Inputs, labels, losses);
    if (this.selector !== undefined && joined.length > 0) await this.selector.learn(app, uid, joined);
    this.acceptedTotal += count;
    this.joinedTotal += joined.length;
    return { accepted: count, joined: joined.length, losses };
  }

  accepted(): number {
    return this.acceptedTotal;
  }

  joined(): number {
    return this.joinedTotal;
  }

  /** Also fills `losses` with each joined output's loss, by the model version that gave it. */
  private join(view: ConfigView, application: string, source: Inputs, labels: readonly string[], losses: Map<string, number[]>): JoinedFeedback[] {
    const app = view.applications.get(application);
    const cache = this.cache;
    if (app === undefined || cache === undefined) return [];
    const policy = applicationPolicy(app);
    if (!policy.learns) return [];
    const keys: Array<[string, string]> = [];
    for (const arm of policy.arms) {
      const { model, version } = parseArm(arm);
      const resolved = version ?? view.currentVersions.get(model);
      if (resolved !== undefined) keys.push([arm, modelKey(model, resolved)]);
    }
    const out: JoinedFeedback[] = [];
    let offset = 0;
    labels.forEach((label, index) => {
      const input = inputKeyBytes({ source, index, offset });
      offset += source.lengths[index] ?? 0;
      const outputs = new Map<string, string>();
      for (const [arm, key] of keys) {
        const output = cache.peek(key, input);
        if (output === undefined) continue;
        outputs.set(arm, output);
        const versionLosses = losses.get(key) ?? [];
        versionLosses.push(policy.lossOf(output, label));
        losses.set(key, versionLosses);
      }
      if (outputs.size > 0) out.push({ outputs, label });
    });
    return out;
  }
}
