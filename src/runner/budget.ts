/**
 * Token budgets, cumulative per step, protocol and project. Spent figures come from the store (real
 * usage charged after each call), so limits hold across calls, processes and restarts.
 */
import type { BudgetMode } from "../spec/schema.js";

export type BudgetScope = "step" | "protocol" | "project";

export interface BudgetLimits {
  mode: BudgetMode;
  step?: number | undefined;
  protocol?: number | undefined;
  project?: number | undefined;
}

export type BudgetSpent = Record<BudgetScope, number>;

export interface BudgetBreach {
  scope: BudgetScope;
  limit: number;
  spent: number;
  /** Tokens the next call is expected to use (pre-call checks only). */
  estimated?: number;
}

export type BudgetDecision =
  | { action: "allow" }
  | { action: "warn"; breach: BudgetBreach }
  | { action: "stop"; breach: BudgetBreach };

const SCOPES: BudgetScope[] = ["step", "protocol", "project"];

function firstBreach(limits: BudgetLimits, spent: BudgetSpent, extra: number): BudgetBreach | undefined {
  for (const scope of SCOPES) {
    const limit = limits[scope];
    if (limit !== undefined && spent[scope] + extra > limit) {
      return extra > 0
        ? { scope, limit, spent: spent[scope], estimated: extra }
        : { scope, limit, spent: spent[scope] };
    }
  }
  return undefined;
}

/** Before a call: refuse (strict) when what is already spent plus the estimate exceeds a limit. */
export function checkBeforeCall(limits: BudgetLimits, spent: BudgetSpent, estimate: number): BudgetDecision {
  if (limits.mode === "off") return { action: "allow" };
  const breach = firstBreach(limits, spent, estimate);
  if (!breach) return { action: "allow" };
  return limits.mode === "strict" ? { action: "stop", breach } : { action: "warn", breach };
}

/** After a call was charged: stop (strict) when a limit has been overrun. */
export function checkAfterCall(limits: BudgetLimits, spent: BudgetSpent): BudgetDecision {
  return checkBeforeCall(limits, spent, 0);
}
