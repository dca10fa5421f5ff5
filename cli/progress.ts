import { type DeployModelResponse, DeployStage } from "../gen/clipper/v1/container_manager_service_pb.js";
import { type Output, stageName } from "./output.js";

const SPINNER = ["|", "/", "-", "\\"];

export interface ProgressOptions {
  /** Nothing is drawn on a terminal for a deploy that finishes within this time. */
  delayMs?: number;
  /** How often the spinner turns on a terminal. */
  frameMs?: number;
}

/**
 * Shows a deploy's progress: on a terminal, one spinner line redrawn in place
 * once the deploy takes longer than a moment; elsewhere, a plain line for each
 * change of stage, counts or message (logs stay readable).
 */
export class DeployProgress {
  private last: DeployModelResponse | undefined;
  private lastPrinted = "";
  private frame = 0;
  private drawn = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly out: Output,
    private readonly label: string,
    options: ProgressOptions = {},
  ) {
    if (out.isTTY === true) {
      const start = setTimeout(() => {
        this.drawn = true;
        this.draw();
        const spin = setInterval(() => {
          this.frame++;
          this.draw();
        }, options.frameMs ?? 100);
        spin.unref();
        this.timers.push(spin);
      }, options.delayMs ?? 300);
      start.unref();
      this.timers.push(start);
    }
  }

  update(response: DeployModelResponse): void {
    this.last = response;
    if (this.out.isTTY === true) {
      if (this.drawn) this.draw();
      return;
    }
    const line = this.describe();
    if (line !== this.lastPrinted) {
      this.lastPrinted = line;
      this.out.write(`${line}\n`);
    }
  }

  /** Stops drawing and clears the spinner line, leaving the terminal ready for the final message. */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    if (this.drawn) this.out.write("\r\x1b[K");
    this.drawn = false;
  }

  private draw(): void {
    const spinner = SPINNER[this.frame % SPINNER.length] ?? "";
    this.out.write(`\r\x1b[K${spinner} ${this.describe()}`);
  }

  private describe(): string {
    const r = this.last;
    if (r === undefined) return `${this.label}: waiting for the container-manager`;
    const stage = r.stage === DeployStage.UNSPECIFIED ? "pending" : stageName(r.stage);
    const message = r.message === "" ? "" : `: ${r.message.split("\n")[0]}`;
    return `${this.label}: ${stage}, ${r.readyReplicas}/${r.desiredReplicas} replicas ready${message}`;
  }
}
