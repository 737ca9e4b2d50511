/**
 * Budgets applied to one run: the limits that hold for a step, what each limited scope has spent
 * (from the store, so limits are cumulative across calls and restarts), and what a breach does.
 */
import type { TokenUsage } from "../engines/engine-port.js";
import type { BudgetMode } from "../spec/schema.js";
import { EVENT } from "../store/event-types.js";
import type { StepRun, StoreOps, UsagePhase } from "../store/types.js";
import {
  type BudgetDecision,
  type BudgetLimits,
  type BudgetScope,
  type BudgetSpent,
  checkAfterCall,
  checkBeforeCall,
  limitedScopes,
} from "./budget.js";
import { eventBase, type RunScope } from "./run-scope.js";

export function budgetLimits(scope: RunScope, stepId: string): BudgetLimits {
  const { ctx } = scope;
  const step = ctx.steps.get(stepId)!.spec;
  const b = ctx.config.budgets;
  const protocolMode = ctx.spec.budget?.mode ?? b.mode;
  const limit = (n: number | null | undefined, mode: BudgetMode) =>
    n == null ? undefined : { limit: n, mode };
  return {
    step: limit(step.budget?.max_tokens ?? b.maxTokensPerStep, step.budget?.mode ?? protocolMode),
    protocol: limit(ctx.spec.budget?.max_tokens ?? b.maxTokensPerProtocol, protocolMode),
    project: limit(b.maxTokensPerProject, b.mode),
  };
}

/** What each limited scope has spent so far; scopes without a limit (or off) are not summed. */
async function spent(scope: RunScope, stepRunId: number, limits: BudgetLimits): Promise<BudgetSpent> {
  const on = new Set(limitedScopes(limits));
  const total = async (s: BudgetScope, where: Parameters<StoreOps["sumUsage"]>[0]) =>
    on.has(s) ? (await scope.store.sumUsage(where)).total : 0;
  const [step, protocol, project] = await Promise.all([
    total("step", { stepRunId }),
    total("protocol", { protocolRunId: scope.ctx.run.id }),
    total("project", { projectId: scope.ctx.project.id }),
  ]);
  return { step, protocol, project };
}

export type BudgetCheck = { ok: true } | { ok: false; message: string; metadata: Record<string, unknown> };

/**
 * Checks a budget before a call (with the call's estimate) or after one (estimate 0). A warning is
 * recorded and allowed; a strict breach is returned for the caller to stop on.
 */
export async function checkBudget(
  scope: RunScope,
  step: StepRun,
  phase: UsagePhase,
  estimate: number | null,
): Promise<BudgetCheck> {
  const limits = budgetLimits(scope, step.stepName);
  if (limitedScopes(limits).length === 0) return { ok: true };
  const now = await spent(scope, step.id, limits);
  const decision: BudgetDecision =
    estimate === null ? checkAfterCall(limits, now) : checkBeforeCall(limits, now, estimate);
  if (decision.action === "allow") return { ok: true };
  const when = estimate === null ? "after_call" : "before_call";
  const b = decision.breach;
  const message = `${b.scope} budget ${b.limit} tokens: ${b.spent} spent${b.estimated ? ` + ${b.estimated} estimated` : ""}`;
  const metadata = { ...b, phase, when, mode: limits[b.scope]!.mode };
  if (decision.action === "warn") {
    await scope.store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.budgetWarning,
      message,
      metadata,
    });
    return { ok: true };
  }
  return { ok: false, message: `Budget exceeded: ${message}`, metadata };
}

export function charge(
  scope: RunScope,
  step: StepRun,
  phase: UsagePhase,
  engineId: string,
  model: string | null,
  usage: TokenUsage,
): Promise<void> {
  return scope.store.recordUsage({
    protocolRunId: scope.ctx.run.id,
    stepRunId: step.id,
    phase,
    engineId,
    model,
    usage,
  });
}
