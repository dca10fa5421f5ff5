import { create, equals, toJsonString } from "@bufbuild/protobuf";
import type { CreateApplicationRequest } from "../../gen/clipper/v1/management_service_pb.js";
import { type Application, type SelectionPolicy, SelectionPolicySchema } from "../../gen/clipper/v1/resources_pb.js";
import { inputTypeName } from "../shared/index.js";
import { DEFAULT_SLO_MICROS } from "./validation.js";

/** An unset policy means single (CreateApplicationRequest.policy). */
const SINGLE = create(SelectionPolicySchema, { kind: { case: "single", value: {} } });

const MAX_SHOWN_CHARS = 80;

function shown(text: string): string {
  const quoted = JSON.stringify(text);
  return quoted.length <= MAX_SHOWN_CHARS ? quoted : `${quoted.slice(0, MAX_SHOWN_CHARS)}..." (${Buffer.byteLength(text)} bytes)`;
}

const policyText = (policy: SelectionPolicy) => toJsonString(SelectionPolicySchema, policy);

/**
 * How an existing application differs from what a CreateApplication request
 * defines, one entry per field ("slo_micros is 100000, requested 20000");
 * empty when the request defines this very application, so creating it again
 * is a no-op. Links are not part of the definition: LinkModel makes them.
 */
export function applicationDifferences(existing: Application, req: CreateApplicationRequest): string[] {
  const differences: string[] = [];
  if (existing.inputType !== req.inputType) {
    differences.push(`input_type is ${inputTypeName(existing.inputType)}, requested ${inputTypeName(req.inputType)}`);
  }
  if (existing.defaultOutput !== req.defaultOutput) {
    differences.push(`default_output is ${shown(existing.defaultOutput)}, requested ${shown(req.defaultOutput)}`);
  }
  const sloMicros = req.sloMicros === 0n ? DEFAULT_SLO_MICROS : req.sloMicros;
  if (existing.sloMicros !== sloMicros) differences.push(`slo_micros is ${existing.sloMicros}, requested ${sloMicros}`);
  if (existing.description !== req.description) {
    differences.push(`description is ${shown(existing.description)}, requested ${shown(req.description)}`);
  }
  if (existing.cacheEnabled !== req.cacheEnabled) differences.push(`cache_enabled is ${existing.cacheEnabled}, requested ${req.cacheEnabled}`);
  if (existing.defaultOnOverload !== req.defaultOnOverload) {
    differences.push(`default_on_overload is ${existing.defaultOnOverload}, requested ${req.defaultOnOverload}`);
  }
  const stored = existing.policy ?? SINGLE;
  const requested = req.policy ?? SINGLE;
  if (!equals(SelectionPolicySchema, stored, requested)) differences.push(`policy is ${policyText(stored)}, requested ${policyText(requested)}`);
  return differences;
}
