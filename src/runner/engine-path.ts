/**
 * The runner's one path around an engine call, the same for a step's exec call, its QA agent and a
 * planner: the budget is checked with the prompt's estimate before anything runs, then the call
 * waits for a slot of its engine's concurrency cap and holds it while it runs. The call charges its
 * usage to the same account (`charge`), so budgets see planning, exec and QA alike.
 */
import type { UsagePhase } from "../store/types.js";
import { type BudgetAccount, checkBudget } from "./budget-guard.js";
import type { RunnerDeps } from "./run-context.js";
import { estimateTokens } from "./token-estimate.js";

export interface EngineCallPath<T> {
  account: BudgetAccount;
  phase: UsagePhase;
  engineId: string;
  /** The rendered prompt: what the pre-call estimate counts. */
  prompt: string;
  gate: RunnerDeps["engineGate"];
  signal: AbortSignal;
  /**
   * Once the budget allows the call, before it waits for a slot (a step records that it started),
   * with the prompt's estimate.
   */
  admitted?: (estimate: number) => Promise<void>;
  /** The call itself (with its retries); charges what it used. */
  call: () => Promise<T>;
}

export type EngineCallResult<T> =
  | { ok: true; value: T; estimate: number }
  | { ok: false; refused: { message: string; metadata: Record<string, unknown> }; estimate: number };

export async function onEnginePath<T>(p: EngineCallPath<T>): Promise<EngineCallResult<T>> {
  const estimate = estimateTokens(p.prompt);
  const budget = await checkBudget(p.account, p.phase, estimate);
  if (!budget.ok) return { ok: false, refused: budget, estimate };
  await p.admitted?.(estimate);
  const release = p.gate ? await p.gate(p.engineId, p.signal) : undefined;
  try {
    return { ok: true, value: await p.call(), estimate };
  } finally {
    await release?.();
  }
}
