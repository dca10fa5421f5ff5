/** gRPC status codes (the numbers on the wire), as a model container answers them. */
export enum Code {
  Ok = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

/**
 * The one error the model server answers with its own code: a request it
 * refuses (bad inputs, too many open batches). Anything else thrown on the way
 * becomes Internal on a unary call (the cause is logged, not sent) and Unknown
 * with its message on a stream's batch.
 */
export class StatusError extends Error {
  override name = "StatusError";

  constructor(
    message: string,
    readonly code: Code,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new StatusError(message, Code.InvalidArgument);
