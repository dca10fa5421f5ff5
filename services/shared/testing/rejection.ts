// For tests: the ConnectError a call fails with (the test fails if it succeeds or throws anything else).
import { expect } from "vitest";
import { ConnectError } from "../errors.js";

export async function rejection(call: Promise<unknown> | (() => unknown)): Promise<ConnectError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected the call to fail with a ConnectError");
}
