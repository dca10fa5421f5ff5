import { Code, ConnectError } from "@connectrpc/connect";

/** Constructors for the errors handlers throw; the message names the problem. */
export const invalidArgument = (message: string) => new ConnectError(message, Code.InvalidArgument);
export const notFound = (message: string) => new ConnectError(message, Code.NotFound);
export const alreadyExists = (message: string) => new ConnectError(message, Code.AlreadyExists);
export const failedPrecondition = (message: string) => new ConnectError(message, Code.FailedPrecondition);
export const unavailable = (message: string) => new ConnectError(message, Code.Unavailable);
export const resourceExhausted = (message: string) => new ConnectError(message, Code.ResourceExhausted);
export const deadlineExceeded = (message: string) => new ConnectError(message, Code.DeadlineExceeded);

export { Code, ConnectError };
