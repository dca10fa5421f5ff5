import { create } from "@bufbuild/protobuf";
import { type Inputs, InputsSchema, InputType } from "../../gen/clipper/common/v1/data_pb.js";
import type { Input } from "../../gen/clipper/v1/prediction_service_pb.js";
import { inputTypeName, invalidArgument, numberProblem, stringProblem } from "../shared/index.js";

const CASE_OF_TYPE: Partial<Record<InputType, Input["value"]["case"]>> = {
  [InputType.BYTES]: "bytes",
  [InputType.INTS]: "ints",
  [InputType.FLOATS]: "floats",
  [InputType.DOUBLES]: "doubles",
  [InputType.STRINGS]: "string",
};

/** One `Input` of the public API as a packed batch of one, checked against the application's type. */
export function packInput(input: Input | undefined, type: InputType, field = "input"): Inputs {
  const v = input?.value;
  if (v === undefined || v.case === undefined) throw invalidArgument(`${field} is missing`);
  if (CASE_OF_TYPE[type] !== v.case) {
    throw invalidArgument(`${field} holds ${v.case} but the application expects ${inputTypeName(type)}`);
  }
  if (v.case === "ints" || v.case === "floats" || v.case === "doubles") {
    // The same check of numbers as REST's and the router's: finite, and within the type.
    for (const [j, x] of v.value.values.entries()) {
      const problem = numberProblem(type, x);
      if (problem !== undefined) throw invalidArgument(`${field}.${v.case}.values[${j}] ${problem}`);
    }
  }
  switch (v.case) {
    case "bytes":
      return create(InputsSchema, { type, bytes: [v.value] });
    case "string": {
      const problem = stringProblem(v.value);
      if (problem !== undefined) throw invalidArgument(`${field}.string ${problem}`);
      return create(InputsSchema, { type, strings: [v.value] });
    }
    case "ints":
      return create(InputsSchema, { type, lengths: [v.value.values.length], ints: v.value.values });
    case "floats":
      return create(InputsSchema, { type, lengths: [v.value.values.length], floats: v.value.values });
    case "doubles":
      return create(InputsSchema, { type, lengths: [v.value.values.length], doubles: v.value.values });
  }
}
