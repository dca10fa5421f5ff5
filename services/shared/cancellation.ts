/**
 * What the query path reads of an AbortSignal: whether the caller has gone,
 * and one listener for when it goes. An AbortSignal is one; so is a
 * `Cancellation`, which costs far less per call than an AbortController and
 * its EventTarget (they showed in the gateway's and router's CPU profiles).
 */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once: true }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A CancelSignal with one listener at a time (each query has one waiter), aborted once. */
export class Cancellation implements CancelSignal {
  aborted = false;
  private listener: (() => void) | undefined;

  addEventListener(_type: "abort", listener: () => void): void {
    this.listener = listener;
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }
}

/** An AbortSignal following `signal`, for APIs that need a real one (connect-es clients). */
export function toAbortSignal(signal: CancelSignal): AbortSignal {
  if (signal instanceof AbortSignal) return signal;
  const controller = new AbortController();
  if (signal.aborted) controller.abort();
  else signal.addEventListener("abort", () => controller.abort(), { once: true });
  return controller.signal;
}
