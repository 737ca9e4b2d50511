/**
 * Policies in the spec accept the original format's aliases; the runner works on this one shape.
 */
import type { PolicySpec, StepSpec } from "./schema.js";

export interface LoopPolicy {
  behavior: "loop";
  id: string;
  conditions: string[];
  /** Step id to go back to; resolved from step_back when not given. */
  targetStep: string | null;
  stepBack: number;
  maxIterations: number;
  skip: string[];
}

export interface TriggerPolicy {
  behavior: "trigger";
  id: string;
  conditions: string[];
  triggerStep: string;
  inline: boolean;
  /** How often this trigger may fire per run (persisted), so trigger chains always end. */
  maxIterations: number;
}

export type NormalizedPolicy = LoopPolicy | TriggerPolicy;

/** A loop without max_iterations still stops: unbounded loops were a bug of the original. */
export const DEFAULT_MAX_ITERATIONS = 3;

function conditionList(p: PolicySpec): string[] {
  const raw = [p.conditions, p.condition].flatMap((c) => (c == null ? [] : Array.isArray(c) ? c : [c]));
  return raw.map((c) => c.trim().toLowerCase()).filter((c) => c.length > 0);
}

/**
 * Normalises one step's policies. Unknown behaviours are dropped (kept in the spec, never applied).
 * `steps` is needed to turn index-based aliases (skip_steps) into ids.
 */
export function normalizePolicies(step: StepSpec, steps: readonly StepSpec[]): NormalizedPolicy[] {
  const out: NormalizedPolicy[] = [];
  (step.policies ?? []).forEach((p, i) => {
    const id = p.id ?? p.module_id ?? `${step.id}:${p.behavior}:${i}`;
    if (p.behavior === "loop") {
      const skipByIndex = (p.skip_steps ?? []).map((n) => steps[n]?.id).filter((s): s is string => !!s);
      out.push({
        behavior: "loop",
        id,
        conditions: conditionList(p),
        targetStep: p.target_step ?? null,
        stepBack: p.step_back ?? 1,
        maxIterations: p.max_iterations ?? DEFAULT_MAX_ITERATIONS,
        skip: [...(p.skip ?? []), ...skipByIndex],
      });
    } else if (p.behavior === "trigger") {
      const target = p.trigger_step ?? p.trigger_agent_id ?? p.target_agent_id;
      if (target)
        out.push({
          behavior: "trigger",
          id,
          conditions: conditionList(p),
          triggerStep: target,
          inline: p.inline ?? true,
          maxIterations: p.max_iterations ?? DEFAULT_MAX_ITERATIONS,
        });
    }
  });
  return out;
}

/** The step id a policy names, and where in the spec it is named (for validation errors). */
export function policyTargets(step: StepSpec): { target: string; field: string; index: number }[] {
  const out: { target: string; field: string; index: number }[] = [];
  (step.policies ?? []).forEach((p, index) => {
    for (const field of ["target_step", "trigger_step", "trigger_agent_id", "target_agent_id"] as const) {
      const v = p[field];
      if (typeof v === "string") out.push({ target: v, field, index });
    }
    (p.skip ?? []).forEach((s, k) => {
      out.push({ target: s, field: `skip/${k}`, index });
    });
  });
  return out;
}
