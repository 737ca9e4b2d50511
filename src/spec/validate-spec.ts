/**
 * Validation of a ProtocolSpec: the schema, unique step ids, and the references a spec makes on
 * itself, with one JSON pointer and a plain-words reason per error.
 */
import type { z } from "zod";
import { checkReferences } from "./check-references.js";
import { ProtocolSpec } from "./schema.js";
import type { SpecError } from "./spec-error.js";

export type { SpecError } from "./spec-error.js";

export type SpecValidation =
  | { ok: true; spec: ProtocolSpec; errors: [] }
  | { ok: false; errors: SpecError[] };

export function jsonPointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

export function validateSpec(input: unknown): SpecValidation {
  // reportInput: a type error can then say what it got, not only what it expected
  const parsed = ProtocolSpec.safeParse(input, { reportInput: true });
  if (!parsed.success) return { ok: false, errors: parsed.error.issues.flatMap(issueToErrors) };
  const errors = [...duplicateStepIds(parsed.data), ...checkReferences(parsed.data)];
  return errors.length === 0 ? { ok: true, spec: parsed.data, errors: [] } : { ok: false, errors };
}

function duplicateStepIds(spec: ProtocolSpec): SpecError[] {
  const seen = new Map<string, number>();
  const errors: SpecError[] = [];
  spec.steps.forEach((step, i) => {
    const first = seen.get(step.id);
    if (first === undefined) seen.set(step.id, i);
    else
      errors.push({
        pointer: `/steps/${i}/id`,
        message: `duplicate step id "${step.id}" (also /steps/${first}/id)`,
      });
  });
  return errors;
}

/** One zod issue as errors with JSON pointers and plain reasons. */
export function issueToErrors(issue: z.core.$ZodIssue): SpecError[] {
  const pointer = jsonPointer(issue.path);
  switch (issue.code) {
    case "invalid_type":
      return [{ pointer, message: `expected ${issue.expected}${describeReceived(issue)}` }];
    case "invalid_value":
      return [
        { pointer, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` },
      ];
    case "unrecognized_keys":
      return issue.keys.map((k) => ({ pointer: `${pointer}/${k}`, message: `unknown field "${k}"` }));
    case "too_small":
      return [{ pointer, message: tooSmall(issue) }];
    case "invalid_union":
      return [{ pointer, message: "does not match any allowed shape" }];
    default:
      return [{ pointer, message: issue.message }];
  }
}

function describeReceived(issue: z.core.$ZodIssueInvalidType): string {
  const input = (issue as { input?: unknown }).input;
  if (input === undefined) return ", but it is missing";
  return `, got ${input === null ? "null" : Array.isArray(input) ? "array" : typeof input}`;
}

function tooSmall(issue: z.core.$ZodIssueTooSmall): string {
  if (issue.origin === "array") return `needs at least ${issue.minimum} item(s)`;
  if (issue.origin === "string") return "must not be empty";
  return issue.inclusive ? `must be at least ${issue.minimum}` : `must be greater than ${issue.minimum}`;
}
