/**
 * Token budgets, cumulative per step, protocol and project, each limit in its own scope's mode (a
 * step set to `warn` does not loosen the protocol's strict limit). Spent figures come from the store
 * (real usage charged after each call), so limits hold across calls, processes and restarts.
 */
import type { BudgetMode } from "../spec/schema.js";

export type BudgetScope = "step" | "protocol" | "project";

export interface ScopeLimit {
  limit: number;
  mode: BudgetMode;
}

export type BudgetLimits = Partial<Record<BudgetScope, ScopeLimit>>;

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

/** Scopes whose limit is on (mode not `off`): the only ones worth summing. */
export function limitedScopes(limits: BudgetLimits): BudgetScope[] {
  return SCOPES.filter((s) => limits[s] !== undefined && limits[s].mode !== "off");
}

/**
 * Before a call (`estimate` > 0) or after one (0): a strict limit that would be (or was) passed
 * stops; otherwise a warn limit passed is recorded. Exactly at the limit is allowed.
 */
export function checkBeforeCall(limits: BudgetLimits, spent: BudgetSpent, estimate: number): BudgetDecision {
  let warn: BudgetBreach | undefined;
  for (const scope of limitedScopes(limits)) {
    const { limit, mode } = limits[scope]!;
    if (spent[scope] + estimate <= limit) continue;
    const breach =
      estimate > 0
        ? { scope, limit, spent: spent[scope], estimated: estimate }
        : { scope, limit, spent: spent[scope] };
    if (mode === "strict") return { action: "stop", breach };
    warn ??= breach;
  }
  return warn ? { action: "warn", breach: warn } : { action: "allow" };
}

/** After a call was charged: stop when a strict limit has been overrun. */
export function checkAfterCall(limits: BudgetLimits, spent: BudgetSpent): BudgetDecision {
  return checkBeforeCall(limits, spent, 0);
}
