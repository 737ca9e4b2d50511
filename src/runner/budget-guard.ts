/**
 * Budgets applied to engine calls: who a call is charged to (a step, or a run being planned), the
 * limits that hold for it, what each limited scope has spent (from the store, so limits are
 * cumulative across calls and restarts), and what a breach does.
 */
import type { EffectiveConfig } from "../config/load-config.js";
import type { TokenUsage } from "../engines/engine-port.js";
import type { BudgetMode } from "../spec/schema.js";
import { EVENT } from "../store/event-types.js";
import type { ProtocolRun, StepRun, StoreOps, UsagePhase } from "../store/types.js";
import {
  type BudgetDecision,
  type BudgetLimits,
  type BudgetScope,
  type BudgetSpent,
  checkAfterCall,
  checkBeforeCall,
  limitedScopes,
} from "./budget.js";
import type { RunScope } from "./run-scope.js";

/** Who an engine call is charged to, and the budgets that hold for it. */
export interface BudgetAccount {
  store: StoreOps;
  projectId: number;
  protocolRunId: number;
  /** The step, for a step's calls; null for planning. */
  stepRunId: number | null;
  limits: BudgetLimits;
}

const limit = (n: number | null | undefined, mode: BudgetMode) =>
  n == null ? undefined : { limit: n, mode };

/** A step's calls: its own limit, its protocol's and its project's. */
export function stepAccount(scope: RunScope, step: Pick<StepRun, "id" | "stepName">): BudgetAccount {
  const { ctx } = scope;
  const spec = ctx.steps.get(step.stepName)!.spec;
  const b = ctx.config.budgets;
  const protocolMode = ctx.spec.budget?.mode ?? b.mode;
  return {
    store: scope.store,
    projectId: ctx.project.id,
    protocolRunId: ctx.run.id,
    stepRunId: step.id,
    limits: {
      step: limit(spec.budget?.max_tokens ?? b.maxTokensPerStep, spec.budget?.mode ?? protocolMode),
      protocol: limit(ctx.spec.budget?.max_tokens ?? b.maxTokensPerProtocol, protocolMode),
      project: limit(b.maxTokensPerProject, b.mode),
    },
  };
}

/** A planner's calls: the run has no spec yet, so the configured protocol and project limits hold. */
export function planningAccount(
  store: StoreOps,
  run: Pick<ProtocolRun, "id" | "projectId">,
  config: Pick<EffectiveConfig, "budgets">,
): BudgetAccount {
  const b = config.budgets;
  return {
    store,
    projectId: run.projectId,
    protocolRunId: run.id,
    stepRunId: null,
    limits: {
      protocol: limit(b.maxTokensPerProtocol, b.mode),
      project: limit(b.maxTokensPerProject, b.mode),
    },
  };
}

/** What each limited scope has spent so far; scopes without a limit (or off) are not summed. */
async function spent(account: BudgetAccount): Promise<BudgetSpent> {
  const on = new Set(limitedScopes(account.limits));
  const total = async (s: BudgetScope, where: Parameters<StoreOps["sumUsage"]>[0]) =>
    on.has(s) ? (await account.store.sumUsage(where)).total : 0;
  const [step, protocol, project] = await Promise.all([
    account.stepRunId === null ? 0 : total("step", { stepRunId: account.stepRunId }),
    total("protocol", { protocolRunId: account.protocolRunId }),
    total("project", { projectId: account.projectId }),
  ]);
  return { step, protocol, project };
}

export type BudgetCheck = { ok: true } | { ok: false; message: string; metadata: Record<string, unknown> };

/**
 * Checks a budget before a call (with the call's estimate) or after one (estimate null). A warning
 * is recorded and allowed; a strict breach is returned for the caller to stop on.
 */
export async function checkBudget(
  account: BudgetAccount,
  phase: UsagePhase,
  estimate: number | null,
): Promise<BudgetCheck> {
  const { limits } = account;
  if (limitedScopes(limits).length === 0) return { ok: true };
  const now = await spent(account);
  const decision: BudgetDecision =
    estimate === null ? checkAfterCall(limits, now) : checkBeforeCall(limits, now, estimate);
  if (decision.action === "allow") return { ok: true };
  const when = estimate === null ? "after_call" : "before_call";
  const b = decision.breach;
  const message = `${b.scope} budget ${b.limit} tokens: ${b.spent} spent${b.estimated ? ` + ${b.estimated} estimated` : ""}`;
  const metadata = { ...b, phase, when, mode: limits[b.scope]!.mode };
  if (decision.action === "warn") {
    await account.store.appendEvent({
      protocolRunId: account.protocolRunId,
      stepRunId: account.stepRunId,
      eventType: EVENT.budgetWarning,
      message,
      metadata,
    });
    return { ok: true };
  }
  return { ok: false, message: `Budget exceeded: ${message}`, metadata };
}

export function charge(
  account: BudgetAccount,
  phase: UsagePhase,
  engineId: string,
  model: string | null,
  usage: TokenUsage,
): Promise<void> {
  return account.store.recordUsage({
    protocolRunId: account.protocolRunId,
    stepRunId: account.stepRunId,
    phase,
    engineId,
    model,
    usage,
  });
}
