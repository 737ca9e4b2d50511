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

type ConditionEntry =
  | string
  | {
      on?: string | null;
      reason?: string | null;
      event?: string | null;
      when?: string | null;
      name?: string | null;
    };

/** Condition tokens from both aliases; an object entry contributes its on/reason/event/when/name values. */
function conditionList(p: PolicySpec): string[] {
  const entries = [p.conditions, p.condition].flatMap((c): ConditionEntry[] =>
    c == null ? [] : Array.isArray(c) ? c : [c],
  );
  const tokens = entries.flatMap((e) =>
    typeof e === "string"
      ? [e]
      : [e.on, e.reason, e.event, e.when, e.name].filter((v) => typeof v === "string"),
  );
  return tokens.map((c) => c.trim().toLowerCase()).filter((c) => c.length > 0);
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
        stepBack: Math.max(0, Number(p.step_back ?? 1)),
        maxIterations: Math.max(0, Number(p.max_iterations ?? DEFAULT_MAX_ITERATIONS)),
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
          maxIterations: Math.max(0, Number(p.max_iterations ?? DEFAULT_MAX_ITERATIONS)),
        });
    }
  });
  return out;
}
