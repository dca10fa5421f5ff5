import type { ModelInput } from "../../sdk/typescript/src/index.js";

/** The no-op model for the TypeScript SDK's node_module runtime: "0" for every input. */
export default function noop(inputs: ModelInput[]): string[] {
  return inputs.map(() => "0");
}
