/** Arithmetic on normalised token usage, shared by the engines that sum per-step or per-model figures. */
import type { TokenUsage } from "./engine-port.js";

export function addUsage(a: TokenUsage | undefined, b: TokenUsage): TokenUsage {
  if (!a) return b;
  const cacheWrite = (a.cacheWrite ?? 0) + (b.cacheWrite ?? 0);
  return {
    input: a.input + b.input,
    cachedInput: a.cachedInput + b.cachedInput,
    ...(cacheWrite > 0 ? { cacheWrite } : {}),
    output: a.output + b.output,
    reasoning: a.reasoning + b.reasoning,
    estimated: a.estimated || b.estimated,
  };
}

/** A call's usage as it adds up, per model where the engine names one. */
export class UsageTally {
  private total: TokenUsage | undefined;
  private readonly perModel = new Map<string, TokenUsage>();

  add(usage: TokenUsage, model?: string): void {
    this.total = addUsage(this.total, usage);
    if (model) this.perModel.set(model, addUsage(this.perModel.get(model), usage));
  }

  get usage(): TokenUsage | undefined {
    return this.total;
  }

  /** The model that used the most tokens: the one that did the call's work. */
  get model(): string | undefined {
    let best: [string, number] | undefined;
    for (const [model, u] of this.perModel) {
      const n = u.input + u.output;
      if (!best || n > best[1]) best = [model, n];
    }
    return best?.[0];
  }

  /** Per-model usage as the port reports it: only when more than one model was used. */
  get usageByModel(): Record<string, TokenUsage> | undefined {
    return this.perModel.size > 1 ? Object.fromEntries(this.perModel) : undefined;
  }
}
