import { fsum, type ModelInput } from "../src/index.js";

/** Sums each numeric input, correctly rounded: [1.1, 2.2, 3.3] gives "6.6". */
export default function sumModel(inputs: ModelInput[]): string[] {
  return inputs.map((input) => {
    if (!Array.isArray(input)) throw new Error("the sum model takes ints, floats or doubles");
    return String(fsum(input));
  });
}
