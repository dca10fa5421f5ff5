import type { Application } from "../../gen/clipper/v1/resources_pb.js";
import { type ApplicationPolicy, applicationPolicy, unwrapState, wrapState } from "./application-policy.js";
import type { Combined, Observation } from "./policies/policy.js";
import { type Random, seededRandom } from "./policies/random.js";
import type { PolicyStates } from "./policy-states.js";

/** Which arms (linked models, or "model:version" split entries) answer each input of a request, and how their answers combine. */
export interface SelectionPlan {
  /** Per input, in request order. */
  readonly arms: ReadonlyArray<readonly string[]>;
  combine(answers: ReadonlyMap<string, string>): Combined | undefined;
}

/** Chooses the models of a query; the seam between the query path and selection policies. */
export interface ModelSelector {
  /** Synchronous when nothing needs fetching (single, split, or learned state in cache). */
  select(app: Application, uid: string, count: number, timeoutMs: number): SelectionPlan | Promise<SelectionPlan>;
}

/** One input's feedback joined with what the arms answered for it. */
export interface JoinedFeedback {
  outputs: ReadonlyMap<string, string>;
  label: string;
}

export interface PolicySelectorOptions {
  /** Learned state per application and user; without it learning policies keep their initial state (unit tests). */
  states?: PolicyStates;
  /** Seeded in tests, so selection is reproducible. */
  random?: Random;
}

/**
 * Runs applications' selection policies: reads the learned state (the user's
 * when the query names a uid and the user has state, else the
 * application's), asks the policy for each input's models, and, on feedback,
 * folds the observations into the application's state and the user's.
 */
export class PolicySelector implements ModelSelector {
  private readonly random: Random;

  constructor(private readonly options: PolicySelectorOptions = {}) {
    this.random = options.random ?? seededRandom(Math.floor(Math.random() * 2 ** 32));
  }

  select(app: Application, uid: string, count: number, timeoutMs: number): SelectionPlan | Promise<SelectionPlan> {
    const p = applicationPolicy(app);
    const states = this.options.states;
    if (!p.learns || states === undefined) return this.plan(p, p.policy.init(p.arms), uid, count);
    return this.readState(p, app.name, uid, timeoutMs).then((state) => this.plan(p, state, uid, count));
  }

  /** Learns from joined feedback; resolves once the registry holds the new state (application's and, with a uid, the user's). */
  async learn(app: Application, uid: string, feedback: readonly JoinedFeedback[]): Promise<void> {
    const p = applicationPolicy(app);
    const states = this.options.states;
    if (!p.learns || states === undefined || feedback.length === 0) return;
    const observations: Observation[] = feedback.map((f) => ({ outputs: f.outputs, loss: (output) => p.lossOf(output, f.label) }));
    const fold = (start: unknown) =>
      wrapState(
        p.kind,
        observations.reduce((s, o) => p.policy.observe(s, o), start),
      );
    // A new user starts from what the application has learned so far, not from nothing.
    const population = uid === "" ? undefined : unwrapState(p.kind, (await states.read(app.name, "", 5_000)).value);
    await states.update(app.name, "", (current) => fold(unwrapState(p.kind, current) ?? p.policy.init(p.arms)));
    if (uid !== "") await states.update(app.name, uid, (current) => fold(unwrapState(p.kind, current) ?? population ?? p.policy.init(p.arms)));
  }

  private async readState(p: ApplicationPolicy, application: string, uid: string, timeoutMs: number): Promise<unknown> {
    const states = this.options.states as PolicyStates;
    if (uid !== "") {
      const user = unwrapState(p.kind, (await states.read(application, uid, timeoutMs)).value);
      if (user !== undefined) return user;
    }
    return unwrapState(p.kind, (await states.read(application, "", timeoutMs)).value) ?? p.policy.init(p.arms);
  }

  private plan(p: ApplicationPolicy, state: unknown, uid: string, count: number): SelectionPlan {
    const ctx = uid === "" ? { random: this.random } : { uid, random: this.random };
    const arms: string[][] = [];
    for (let i = 0; i < count; i++) arms.push(p.policy.select(state, p.arms, ctx));
    return { arms, combine: (answers) => p.policy.combine(state, answers, p.arms) };
  }
}
