/**
 * Money budgets, beside the token ones (src/runner/budget.ts): `max_usd` per step, run and project
 * and a per-project daily cap, each in its own scope's mode (strict | warn | off). Pure decisions: the
 * caller brings what each scope spent (from the store, the one ledger across workers) and this call's
 * cost — its prompt's estimate before it, the usage streamed so far during it, its final usage after.
 */

import type { TokenUsage } from "../shared/token-usage.js";
import type { BudgetMode, BudgetSpec } from "../spec/schema.js";
import {
  type CallUsage,
  type CostTotal,
  estimatePromptCost,
  formatUsd,
  NO_COST,
  priceCall,
  priceUsage,
  totalCost,
} from "./call-cost.js";
import type { PriceTable } from "./price-table.js";

/** `protocol` is the run; `project_day` the project's spend on the current day. */
export type MoneyScope = "step" | "protocol" | "project" | "project_day";

export const MONEY_SCOPES: readonly MoneyScope[] = ["step", "protocol", "project", "project_day"];

const SCOPE_LABEL: Record<MoneyScope, string> = {
  step: "step",
  protocol: "run",
  project: "project",
  project_day: "project daily",
};

export interface MoneyLimit {
  usd: number;
  mode: BudgetMode;
}

export type MoneyLimits = Partial<Record<MoneyScope, MoneyLimit>>;

/** What each limited scope spent before this call (unlimited scopes may be left out). */
export type MoneySpent = Partial<Record<MoneyScope, CostTotal>>;

export type MoneyCheckpoint = "before_call" | "during_call" | "after_call";

export interface MoneyBreach {
  scope: MoneyScope;
  mode: BudgetMode;
  kind: "over_limit" | "unknown_cost";
  checkpoint: MoneyCheckpoint;
  limitUsd: number;
  /** The known part of what the scope spent before this call. */
  spentUsd: number;
  /** The known part of this call's cost: estimated (before), so far (during) or final (after). */
  callUsd: number;
  /** A part of the figures is unknown: they are lower bounds. */
  partial: boolean;
  unknownModels: string[];
}

export type MoneyDecision =
  /** `partial`: allowed while a part of the cost was unknown (the project allows unknown costs). */
  | { action: "allow"; partial: boolean }
  /** Every warn-mode limit passed, most specific scope first. */
  | { action: "warn"; breaches: MoneyBreach[]; message: string }
  | { action: "stop"; breach: MoneyBreach; message: string };

export interface MoneyCheck {
  limits: MoneyLimits;
  spent: MoneySpent;
  /** This call's cost at the checkpoint; NO_COST when there is nothing to add (a check between calls). */
  call: CostTotal;
  checkpoint: MoneyCheckpoint;
  /** Unknown costs count as $0 instead of breaching a limit (`budgets.allow_unknown_cost`). */
  allowUnknown: boolean;
}

/** The project's money settings (the config's `budgets`), as far as money limits read them. */
export interface MoneyBudgetSettings {
  mode: BudgetMode;
  maxUsdPerStep?: number | undefined;
  maxUsdPerProtocol?: number | undefined;
  maxUsdPerProject?: number | undefined;
  maxUsdPerProjectPerDay?: number | undefined;
}

/**
 * The money limits that hold for a step: its own `budget.max_usd` (else the project's per-step limit)
 * in its own mode (else the run's), the run's `budget.max_usd` (else the project's per-run limit) in
 * the run's mode (else the project's), and the project's limits in the project's mode.
 */
export function moneyLimitsFor(
  budgets: MoneyBudgetSettings,
  protocol: BudgetSpec | null | undefined,
  step: BudgetSpec | null | undefined,
): MoneyLimits {
  const protocolMode = protocol?.mode ?? budgets.mode;
  const limit = (usd: number | null | undefined, mode: BudgetMode) =>
    usd == null ? undefined : { usd, mode };
  const limits: MoneyLimits = {
    step: limit(step?.max_usd ?? budgets.maxUsdPerStep, step?.mode ?? protocolMode),
    protocol: limit(protocol?.max_usd ?? budgets.maxUsdPerProtocol, protocolMode),
    project: limit(budgets.maxUsdPerProject, budgets.mode),
    project_day: limit(budgets.maxUsdPerProjectPerDay, budgets.mode),
  };
  return Object.fromEntries(Object.entries(limits).filter(([, l]) => l)) as MoneyLimits;
}

/** Scopes whose money limit is on (mode not `off`): the only ones whose spend is worth reading. */
export function limitedMoneyScopes(limits: MoneyLimits): MoneyScope[] {
  return MONEY_SCOPES.filter((s) => limits[s] !== undefined && limits[s].mode !== "off");
}

/**
 * Each limited scope's spend plus this call against its limit: a strict breach stops (before a call:
 * it is not made; during: the engine is stopped; after: the run stops before the next call), a warn
 * breach is recorded; a strict stop wins over a warning. Exactly at the limit is allowed. A cost that
 * is partly unknown breaches as `unknown_cost` unless unknown costs are allowed.
 */
export function checkMoney(check: MoneyCheck): MoneyDecision {
  const warns: MoneyBreach[] = [];
  let partial = false;
  for (const scope of limitedMoneyScopes(check.limits)) {
    const { usd: limitUsd, mode } = check.limits[scope]!;
    const spent = check.spent[scope] ?? NO_COST;
    const total = totalCost([spent, check.call]);
    partial ||= total.partial;
    const over = (total.usd ?? 0) > limitUsd;
    const unknown = total.partial && !check.allowUnknown;
    if (!over && !unknown) continue;
    const breach: MoneyBreach = {
      scope,
      mode,
      kind: over ? "over_limit" : "unknown_cost",
      checkpoint: check.checkpoint,
      limitUsd,
      spentUsd: spent.usd ?? 0,
      callUsd: check.call.usd ?? 0,
      partial: total.partial,
      unknownModels: total.unknownModels,
    };
    if (mode === "strict") return { action: "stop", breach, message: describeBreach(breach) };
    warns.push(breach);
  }
  return warns.length > 0 ? warnOf(warns) : { action: "allow", partial };
}

function warnOf(breaches: MoneyBreach[]): MoneyDecision {
  return { action: "warn", breaches, message: breaches.map(describeBreach).join("; ") };
}

const CALL_PART: Record<MoneyCheckpoint, string> = {
  before_call: "estimated for the next call",
  during_call: "so far in this call",
  after_call: "for this call",
};

/** One line a user can act on: the scope, its limit and mode, the figures, and for unknown costs the fix. */
export function describeBreach(b: MoneyBreach): string {
  const head = `${SCOPE_LABEL[b.scope]} money budget ${formatUsd(b.limitUsd)} (${b.mode})`;
  const figures = `${formatUsd(b.spentUsd)} spent + ${formatUsd(b.callUsd)} ${CALL_PART[b.checkpoint]}`;
  if (b.kind === "over_limit")
    return `${head}: ${figures}${b.partial ? `, plus the unknown cost of ${b.unknownModels.join(", ")}` : ""}`;
  return (
    `${head} cannot be enforced: the cost of ${b.unknownModels.join(", ")} is unknown (no price) beside ` +
    `${figures}; add its price under prices.models in tasksgodzilla.config.* (or set the model), ` +
    "or set budgets.allow_unknown_cost: true"
  );
}

/**
 * One engine call under money budgets: the estimate before it, each usage event it streams, and its
 * final usage after it, priced and checked against the same spend. A warning is given once per scope
 * per call; the caller records it (`budget_warning`) and, on `stop`, records `budget_exceeded` and
 * stops the call or the run.
 */
export class CallBudgetWatch {
  private soFar: CostTotal = NO_COST;
  private readonly warned = new Set<MoneyScope>();

  constructor(
    private readonly opts: {
      prices: PriceTable;
      limits: MoneyLimits;
      /** What each limited scope spent before this call. */
      spent: MoneySpent;
      allowUnknown: boolean;
      /** The model the call asks for; usage the engine does not attribute is priced on it. */
      requestedModel?: string | null | undefined;
    },
  ) {}

  /** Whether any money limit is on: with none, the call needs no pricing before it runs. */
  get active(): boolean {
    return limitedMoneyScopes(this.opts.limits).length > 0;
  }

  /** Before the call, with the prompt's estimated token count. */
  beforeCall(promptTokens: number): MoneyDecision {
    const estimate = estimatePromptCost(this.opts.prices, this.opts.requestedModel, promptTokens);
    return this.decide(totalCost([estimate]), "before_call");
  }

  /** At a usage event (tokens since the previous one): the call's cost so far. */
  onUsage(event: { usage: TokenUsage; model?: string | undefined }): MoneyDecision {
    const cost = priceUsage(this.opts.prices, event.model ?? this.opts.requestedModel, event.usage);
    this.soFar = totalCost([this.soFar, cost]);
    return this.decide(this.soFar, "during_call");
  }

  /** The call's cost so far, from the usage events seen. */
  get streamedCost(): CostTotal {
    return this.soFar;
  }

  /** After the call, on the usage it reported (priced per model it ran on). */
  afterCall(result: Omit<CallUsage, "requestedModel">): MoneyDecision {
    const parts = priceCall(this.opts.prices, { ...result, requestedModel: this.opts.requestedModel });
    return this.decide(totalCost(parts.map((p) => p.cost)), "after_call");
  }

  private decide(call: CostTotal, checkpoint: MoneyCheckpoint): MoneyDecision {
    const { limits, spent, allowUnknown } = this.opts;
    const decision = checkMoney({ limits, spent, call, checkpoint, allowUnknown });
    if (decision.action !== "warn") return decision;
    const fresh = decision.breaches.filter((b) => !this.warned.has(b.scope));
    for (const b of fresh) this.warned.add(b.scope);
    return fresh.length > 0 ? warnOf(fresh) : { action: "allow", partial: call.partial };
  }
}
