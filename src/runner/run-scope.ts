/**
 * What every part of one run's execution shares: the dependencies, the loaded run context, the
 * signal that stops it, and the way back into the step path for inline triggers.
 */

import { settingsFor } from "../config/engine-settings.js";
import type { Engine, EngineSettings, PreflightResult, TokenUsage } from "../engines/engine-port.js";
import type { Json, StepRun, Store } from "../store/types.js";
import type { RunContext, RunnerDeps } from "./run-context.js";
import { totalTokens } from "./token-estimate.js";

/** `stop`: the run must not go on (paused, blocked, interrupted); `continue`: pick the next step. */
export type StepOutcome = "continue" | "stop";

/** Where a step runs from: the top of the run, or inline from a trigger. */
export interface Frame {
  depth: number;
  /** Step ids of the inline call stack, for cycle detection. */
  chain: string[];
}

export const TOP_FRAME: Frame = { depth: 0, chain: [] };

export interface RunScope {
  deps: RunnerDeps;
  store: Store;
  ctx: RunContext;
  signal: AbortSignal;
  /** Runs a step through the whole path (used by inline triggers). */
  runStep(stepRunId: number, frame: Frame): Promise<StepOutcome>;
  /** The engine's preflight, once per engine and settings for the whole run. */
  preflight(engine: Engine, settings: EngineSettings): Promise<PreflightResult>;
}

export function engineSettings(ctx: RunContext, engineId: string): EngineSettings {
  return settingsFor(ctx.config.engines, engineId, ctx.config.engineHomeRoot);
}

/** Usage as events carry it: snake_case, with the total and whether it is an estimate. */
export function usageMeta(u: TokenUsage): Json {
  return {
    input: u.input,
    cached_input: u.cachedInput,
    output: u.output,
    reasoning: u.reasoning,
    total: totalTokens(u),
    estimated: u.estimated,
  };
}

/** Counters kept in a step's runtime_state (loop_counts, trigger_counts). */
export function counts(state: Json, key: string): Record<string, number> {
  const v = state[key];
  return v && typeof v === "object" ? (v as Record<string, number>) : {};
}

export function eventBase(scope: RunScope, step: StepRun) {
  return { protocolRunId: scope.ctx.run.id, stepRunId: step.id };
}
