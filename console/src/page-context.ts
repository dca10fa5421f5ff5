/** What every view needs from the page: the session, the frames, and a way to act. */
import type { MetricsFrame, SessionInfo } from "../../services/console/console-api.js";

export interface PageContext {
  session(): SessionInfo | undefined;
  frames(): readonly MetricsFrame[];
  /** Names of every model the registry has, for the link form. */
  modelNames(): string[];
  /** Reads from the console's API with the operator's token. */
  get<T>(path: string): Promise<T>;
  /** Sends a change; shows its outcome; resolves whether it worked. */
  act(done: string, method: string, path: string, body?: unknown): Promise<boolean>;
  /** Attributes for a control that changes something: disabled, saying why, for a token that may not. */
  writeAttributes(): Record<string, string | boolean>;
}
