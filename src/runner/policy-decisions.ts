/**
 * Loop and trigger decisions as pure functions of the step outcome, the steps' states and the
 * persisted counters. The runner applies what they decide; every decision carries its inputs.
 */
import type { LoopPolicy, NormalizedPolicy, TriggerPolicy } from "../spec/normalize-policy.js";

/** Why policies are being evaluated. */
export type OutcomeReason =
  | "qa_failed"
  | "qa_error"
  | "exec_failed"
  | "qa_passed"
  | "output_refused"
  | `directive:${string}`;

const FAILURES: readonly string[] = ["qa_failed", "qa_error", "exec_failed"];

/** Condition tokens and the outcomes they match. */
function conditionMatches(condition: string, reason: OutcomeReason): boolean {
  if (condition === reason) return true;
  if (condition === "failure") return FAILURES.includes(reason);
  if (condition === "success" || condition === "exec_completed") return reason === "qa_passed";
  return false;
}

/** Loops with no conditions apply to any failure; triggers with none apply on success only. */
export function policyApplies(policy: NormalizedPolicy, reason: OutcomeReason): boolean {
  if (policy.conditions.length === 0) {
    return policy.behavior === "loop" ? FAILURES.includes(reason) : reason === "qa_passed";
  }
  return policy.conditions.some((c) => conditionMatches(c, reason));
}

export interface StepState {
  id: string;
  index: number;
  status: string;
}

export type LoopDecision =
  | { kind: "none"; skipped: { policy: LoopPolicy; conditions: string[] }[] }
  | { kind: "limit"; policy: LoopPolicy; iterations: number; maxIterations: number }
  | {
      kind: "loop";
      policy: LoopPolicy;
      targetIndex: number;
      targetStep: string;
      /** Step ids set back to pending (the range minus the skip list). */
      reset: string[];
      iterations: number;
      maxIterations: number;
    };

/**
 * The first loop policy whose conditions match decides. The range runs from the target up to and
 * including the current step; later steps are untouched.
 */
export function decideLoop(
  policies: readonly NormalizedPolicy[],
  current: StepState,
  steps: readonly StepState[],
  loopCounts: Record<string, number>,
  reason: OutcomeReason,
): LoopDecision {
  const skipped: { policy: LoopPolicy; conditions: string[] }[] = [];
  for (const policy of policies) {
    if (policy.behavior !== "loop") continue;
    if (!policyApplies(policy, reason)) {
      skipped.push({ policy, conditions: policy.conditions });
      continue;
    }
    const iterations = loopCounts[policy.id] ?? 0;
    if (iterations >= policy.maxIterations) {
      return { kind: "limit", policy, iterations, maxIterations: policy.maxIterations };
    }
    const targetIndex = policy.targetStep
      ? (steps.find((s) => s.id === policy.targetStep)?.index ?? current.index)
      : Math.max(0, current.index - policy.stepBack);
    const reset = steps
      .filter((s) => s.index >= targetIndex && s.index <= current.index && !policy.skip.includes(s.id))
      .map((s) => s.id);
    const target = steps.find((s) => s.index === targetIndex);
    return {
      kind: "loop",
      policy,
      targetIndex,
      targetStep: target?.id ?? current.id,
      reset,
      iterations: iterations + 1,
      maxIterations: policy.maxIterations,
    };
  }
  return { kind: "none", skipped };
}

export type TriggerDecision =
  | { kind: "none" }
  | { kind: "inline"; policy: TriggerPolicy; depth: number; count: number }
  | {
      kind: "enqueue";
      policy: TriggerPolicy;
      depth: number;
      count: number;
      cause: "not_inline" | "depth_exceeded";
    }
  | { kind: "cycle"; policy: TriggerPolicy; chain: string[] }
  | { kind: "limit"; policy: TriggerPolicy; count: number; maxIterations: number };

/**
 * The first trigger whose conditions match decides. `chain` holds the steps of the inline call stack;
 * a target already on it is a cycle. `depth` is the depth of the step that just finished (0 at top).
 * Triggers share the loop's iteration limit so a chain of queued triggers always ends.
 */
export function decideTrigger(
  policies: readonly NormalizedPolicy[],
  chain: readonly string[],
  depth: number,
  maxDepth: number,
  triggerCounts: Record<string, number>,
  reason: OutcomeReason,
): TriggerDecision {
  for (const policy of policies) {
    if (policy.behavior !== "trigger" || !policyApplies(policy, reason)) continue;
    if (chain.includes(policy.triggerStep))
      return { kind: "cycle", policy, chain: [...chain, policy.triggerStep] };
    const count = (triggerCounts[policy.id] ?? 0) + 1;
    if (count > policy.maxIterations)
      return { kind: "limit", policy, count: count - 1, maxIterations: policy.maxIterations };
    if (!policy.inline) return { kind: "enqueue", policy, depth, count, cause: "not_inline" };
    if (depth + 1 > maxDepth) return { kind: "enqueue", policy, depth, count, cause: "depth_exceeded" };
    return { kind: "inline", policy, depth: depth + 1, count };
  }
  return { kind: "none" };
}
