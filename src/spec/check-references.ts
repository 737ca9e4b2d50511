/**
 * Checks a spec can make on itself, before any repository or engine is known: every step a policy
 * names exists, loops only go back and never skip their own step, and directive files stay relative.
 * Each error carries its JSON pointer, like the schema's.
 */
import { isAbsolute, normalize, sep } from "node:path";
import type { ProtocolSpec, StepSpec } from "./schema.js";
import type { SpecError } from "./spec-error.js";

/** The index of the step a policy or directive names: by step id first, then by the agent it runs. */
export function findStepIndex(steps: readonly StepSpec[], name: string): number {
  const byId = steps.findIndex((s) => s.id === name);
  return byId >= 0 ? byId : steps.findIndex((s) => s.agent_id === name);
}

const TRIGGER_FIELDS = ["trigger_step", "trigger_agent_id", "target_agent_id"] as const;

function escapes(file: string): boolean {
  const n = normalize(file);
  return isAbsolute(file) || n === ".." || n.startsWith(`..${sep}`);
}

export function checkReferences(spec: ProtocolSpec): SpecError[] {
  const errors: SpecError[] = [];
  const { steps } = spec;
  steps.forEach((step, i) => {
    (step.policies ?? []).forEach((p, j) => {
      const at = `/steps/${i}/policies/${j}`;
      const missing = (field: string, name: string) =>
        errors.push({
          pointer: `${at}/${field}`,
          message: `policy names step "${name}", which does not exist`,
        });
      if (p.behavior === "loop") {
        if (typeof p.target_step === "string") {
          const target = findStepIndex(steps, p.target_step);
          if (target < 0) missing("target_step", p.target_step);
          else if (target > i)
            errors.push({
              pointer: `${at}/target_step`,
              message: `a loop can only go back: "${p.target_step}" comes after step "${step.id}"`,
            });
        }
        (p.skip ?? []).forEach((name, k) => {
          if (findStepIndex(steps, name) < 0) missing(`skip/${k}`, name);
          else if (name === step.id || name === step.agent_id)
            errors.push({ pointer: `${at}/skip/${k}`, message: "a loop cannot skip the step it belongs to" });
        });
        (p.skip_steps ?? []).forEach((n, k) => {
          if (!steps[n])
            errors.push({ pointer: `${at}/skip_steps/${k}`, message: `there is no step at index ${n}` });
          else if (n === i)
            errors.push({
              pointer: `${at}/skip_steps/${k}`,
              message: "a loop cannot skip the step it belongs to",
            });
        });
      }
      if (p.behavior === "trigger") {
        for (const field of TRIGGER_FIELDS) {
          const name = p[field];
          if (typeof name === "string" && findStepIndex(steps, name) < 0) missing(field, name);
        }
      }
    });
    const directive = step.directive;
    if (directive) {
      [directive.file, ...(directive.alt_files ?? [])].forEach((file, k) => {
        if (escapes(file))
          errors.push({
            pointer: k === 0 ? `/steps/${i}/directive/file` : `/steps/${i}/directive/alt_files/${k - 1}`,
            message: `directive file "${file}" must be a path inside the worktree`,
          });
      });
    }
  });
  return errors;
}
