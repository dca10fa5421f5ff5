import { Code, ConnectError } from "./errors.js";

/** A call waiting on a multiplexed stream for its answer. */
export interface OpenStreamCall<R> {
  resolve(result: R): void;
  reject(error: ConnectError): void;
  /** Undoes what waiting set up (an abort listener, a timer); called once the call is settled. */
  release(): void;
}

/** How errors name the stream: e.g. the router, query stream, QueryStream. */
export interface StreamNames {
  peer: string;
  stream: string;
  method: string;
}

/**
 * The calls open on one long-lived bidirectional stream, by id, and the end
 * of that stream: the client side of QueryStream (gateway → router) and of
 * PredictStream (router → replica). Each call is settled once: by its answer,
 * by `fail` (its caller gave up), or when the stream ends — with UNAVAILABLE
 * when it breaks or the peer ends it, or handed to `unsupported` when the peer
 * answers UNIMPLEMENTED (it does not serve the stream; the caller falls back
 * to unary calls).
 */
export class StreamCalls<R, C extends OpenStreamCall<R>> {
  ended = false;
  private readonly open = new Map<bigint, C>();

  constructor(
    private readonly names: StreamNames,
    /** Told once when the stream is over, to stop writing to it. */
    private readonly onEnd: () => void,
    private readonly unsupported: (calls: readonly C[]) => void,
  ) {}

  get size(): number {
    return this.open.size;
  }

  has(id: bigint): boolean {
    return this.open.has(id);
  }

  add(id: bigint, call: C): void {
    this.open.set(id, call);
  }

  entries(): IterableIterator<[bigint, C]> {
    return this.open.entries();
  }

  /** Fails call `id` with `error`; false if it was not open. */
  fail(id: bigint, error: ConnectError): boolean {
    const call = this.take(id);
    call?.reject(error);
    return call !== undefined;
  }

  /** The peer's answer to call `id`: `result` when `errorCode` is 0, else that error. Unknown ids (given up on) are dropped. */
  answer(id: bigint, errorCode: number, errorMessage: string, result: R): void {
    const call = this.take(id);
    if (call === undefined) return;
    if (errorCode === 0) call.resolve(result);
    else call.reject(new ConnectError(errorMessage, errorCode as Code));
  }

  /** Reads the peer's messages until the stream is over, handing each to `each`. */
  async receive<M>(responses: AsyncIterable<M>, each: (message: M) => void): Promise<void> {
    const { peer, stream, method } = this.names;
    try {
      for await (const message of responses) each(message);
      this.end(new ConnectError(`${peer} ended the ${stream}`, Code.Unavailable));
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unimplemented) {
        const calls = [...this.open.values()];
        this.open.clear();
        for (const c of calls) c.release();
        this.end(new ConnectError(`${peer} does not serve ${method}`, Code.Unimplemented));
        this.unsupported(calls);
        return;
      }
      this.end(new ConnectError(`the ${stream} to ${peer} failed: ${e.rawMessage}`, e.code === Code.Canceled ? Code.Unavailable : e.code));
    }
  }

  /** The stream is over: every open call fails with `error`, and nothing more is written to it. */
  end(error: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    for (const call of this.open.values()) {
      call.release();
      call.reject(error);
    }
    this.open.clear();
    this.onEnd();
  }

  private take(id: bigint): C | undefined {
    const call = this.open.get(id);
    if (call === undefined) return undefined;
    this.open.delete(id);
    call.release();
    return call;
  }
}
