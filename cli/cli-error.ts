/** A failure to report as `error: <message>` with exit status 1. */
export class CliError extends Error {
  override name = "CliError";
}
