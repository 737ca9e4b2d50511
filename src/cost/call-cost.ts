/**
 * What tokens cost: one model's usage priced from the table, an engine call priced per model it used,
 * and totals that say when a part of them is unknown. A model without a price has cost `unknown`,
 * never 0, and every total holding one is `partial`.
 */
import type { TokenUsage } from "../shared/token-usage.js";
import type { PriceMatch, PriceTable } from "./price-table.js";

const PER_MILLION = 1_000_000;

/** The cost of one model's usage: known in USD, or unknown because the model has no price. */
export type Cost =
  /** `price` is null for usage with no tokens, which costs nothing on any model. */
  | { known: true; usd: number; model: string | null; price: PriceMatch | null }
  | { known: false; usd: null; model: string | null; reason: string };

/** A sum of costs. `usd` is the known part; null when nothing in it is known. */
export interface CostTotal {
  usd: number | null;
  /** Some part had an unknown cost: `usd` is then a lower bound. */
  partial: boolean;
  /** The models without a price, for messages ("(none)" when the engine named no model). */
  unknownModels: string[];
}

export const NO_COST: CostTotal = { usd: 0, partial: false, unknownModels: [] };

/** Shown for a call whose engine named no model and was asked for none (the CLI's default). */
export const UNNAMED_MODEL = "(engine default)";

function tokensIn(u: TokenUsage): number {
  return u.input + u.output;
}

/**
 * Prices one model's usage. Each token is priced once, as the kind it is: `input` holds the cache
 * reads (`cachedInput`) and writes (`cacheWrite`) and `output` the reasoning, so those parts are taken
 * out of them first. Usage with no tokens costs $0 whatever the model.
 */
export function priceUsage(table: PriceTable, model: string | null | undefined, usage: TokenUsage): Cost {
  const name = model ?? null;
  const match = name ? table.find(name) : undefined;
  if (!match) {
    if (tokensIn(usage) === 0) return { known: true, usd: 0, model: name, price: null };
    return {
      known: false,
      usd: null,
      model: name,
      reason: name
        ? `no price for model "${name}" in the price table ${table.describe()}`
        : "the engine named no model and none was asked for",
    };
  }
  const p = match.price;
  // figures an engine reported inconsistently are clamped so no token is counted twice
  const cached = Math.min(usage.cachedInput, usage.input);
  const written = Math.min(usage.cacheWrite ?? 0, usage.input - cached);
  const fresh = usage.input - cached - written;
  const reasoning = Math.min(usage.reasoning, usage.output);
  const answer = usage.output - reasoning;
  const usd =
    (fresh * p.input +
      cached * p.cachedInput +
      written * p.cacheWrite +
      answer * p.output +
      reasoning * p.reasoning) /
    PER_MILLION;
  return { known: true, usd, model: name, price: match };
}

/** The cost of a prompt about to be sent, from its estimated token count (uncached input). */
export function estimatePromptCost(
  table: PriceTable,
  model: string | null | undefined,
  promptTokens: number,
): Cost {
  return priceUsage(table, model, {
    input: promptTokens,
    cachedInput: 0,
    output: 0,
    reasoning: 0,
    estimated: true,
  });
}

/** What an engine call reported: the EngineResult's fields, and the model the call asked for. */
export interface CallUsage {
  requestedModel?: string | null | undefined;
  model?: string | undefined;
  usage?: TokenUsage | undefined;
  usageByModel?: Record<string, TokenUsage> | undefined;
}

/** One model's part of a call, priced. */
export interface PricedUsage {
  model: string | null;
  usage: TokenUsage;
  cost: Cost;
}

/**
 * Prices a call on the model(s) it ran on: each model's part when the engine reported usage per
 * model, else the whole usage on the model it reported, else on the one asked for.
 */
export function priceCall(table: PriceTable, call: CallUsage): PricedUsage[] {
  if (call.usageByModel && Object.keys(call.usageByModel).length > 0)
    return Object.entries(call.usageByModel).map(([model, usage]) => ({
      model,
      usage,
      cost: priceUsage(table, model, usage),
    }));
  if (!call.usage) return [];
  const model = call.model ?? call.requestedModel ?? null;
  return [{ model, usage: call.usage, cost: priceUsage(table, model, call.usage) }];
}

/** Sums costs and totals; any unknown part makes the sum partial. */
export function totalCost(parts: Iterable<Cost | CostTotal>): CostTotal {
  let usd: number | null = null;
  let partial = false;
  const unknown = new Set<string>();
  let any = false;
  for (const part of parts) {
    any = true;
    if ("known" in part) {
      if (part.known) usd = (usd ?? 0) + part.usd;
      else {
        partial = true;
        unknown.add(part.model ?? UNNAMED_MODEL);
      }
    } else {
      if (part.usd !== null) usd = (usd ?? 0) + part.usd;
      partial ||= part.partial;
      for (const m of part.unknownModels) unknown.add(m);
    }
  }
  return any ? { usd, partial, unknownModels: [...unknown] } : NO_COST;
}

/** `$1.23`, `≥ $1.23 (no price for x)` when partial, `unknown (no price for x)` when nothing is known. */
export function formatCost(total: CostTotal): string {
  const why = total.unknownModels.length > 0 ? ` (no price for ${total.unknownModels.join(", ")})` : "";
  if (total.usd === null) return `unknown${why}`;
  const amount = formatUsd(total.usd);
  return total.partial ? `≥ ${amount}${why}` : amount;
}

const SMALL = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });

/** Cents, and four significant digits below a cent, so a cheap call does not show as $0.00. */
export function formatUsd(usd: number): string {
  if (usd === 0 || usd >= 0.01) return `$${usd.toFixed(2)}`;
  return `$${SMALL.format(usd)}`;
}
