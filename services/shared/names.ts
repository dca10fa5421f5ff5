import { invalidArgument } from "./errors.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const VERSION = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/**
 * Application and model names are DNS-1123 labels, as in Clipper (they become
 * Kubernetes object names): lower-case letters, digits and '-', starting and
 * ending with a letter or digit, at most 63 characters.
 */
export function validateName(kind: string, name: string): void {
  if (name === "") throw invalidArgument(`${kind} name is empty`);
  if (name.length > 63) throw invalidArgument(`${kind} name "${name.slice(0, 70)}..." is ${name.length} characters long; the limit is 63`);
  if (!DNS_LABEL.test(name)) {
    throw invalidArgument(
      `${kind} name "${name}" is invalid: use lower-case letters, digits and '-', starting and ending with a letter or digit (DNS-1123 label)`,
    );
  }
}

/** Versions: letters, digits, '.', '_' and '-', starting and ending with a letter or digit, at most 63 characters. */
export function validateVersion(version: string, field = "model version"): void {
  if (version === "") throw invalidArgument(`${field} is empty`);
  if (version.length > 63) throw invalidArgument(`${field} is ${version.length} characters long; the limit is 63`);
  if (!VERSION.test(version)) {
    throw invalidArgument(`${field} "${version}" is invalid: use letters, digits, '.', '_' and '-', starting and ending with a letter or digit`);
  }
}
