/**
 * Executing one step, the same code for every engine: resolve the prompt and outputs, check the
 * budget, call the engine (retrying what the engine calls retryable), write the outputs, read the
 * agent's directive, then hand over to QA. Every state change is written with its event.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type {
  Engine,
  EngineRequest,
  EngineResult,
  PreflightResult,
  TokenUsage,
} from "../engines/engine-port.js";
import { identify } from "../engines/processes.js";
import { snapshotTree } from "../git/worktree-changes.js";
import { UnsafePathError, writeFileInside } from "../shared/safe-write.js";
import { EVENT } from "../store/event-types.js";
import type { Json, StepRun } from "../store/types.js";
import { retryDelayMs } from "./ask-for-json.js";
import { type BudgetAccount, charge, checkBudget, stepAccount } from "./budget-guard.js";
import { callEngine } from "./call-engine.js";
import { type CallSetup, callSetup } from "./call-setup.js";
import { DirectiveError, type ReadDirective, readDirective, resetDirective } from "./directives.js";
import { onEnginePath } from "./engine-path.js";
import { modelFor } from "./models.js";
import { qaPhase } from "./qa-phase.js";
import { type ResolvedStep, resolveStep, StepResolutionError } from "./resolve-step.js";
import {
  engineSettings,
  eventBase,
  type Frame,
  type RunScope,
  type StepOutcome,
  usageMeta,
} from "./run-scope.js";
import { recordStall } from "./stall-event.js";
import { checkpointExecFailure, checkpointsEnabled, stepBaseCommit } from "./step-checkpoints.js";
import { blockRun, failStep, interruptStep } from "./step-outcomes.js";
import { estimatedUsage, estimateTokens } from "./token-estimate.js";
import { engineIdFor } from "./validate-run.js";

function sessionOf(state: Json, engineId: string): string | undefined {
  // a session belongs to the engine that made it: another engine (or a changed spec) starts afresh
  const id = state.session_id;
  return typeof id === "string" && id && state.session_engine === engineId ? id : undefined;
}

/** Fails a step whose engine cannot run here, with the preflight's fixes, and blocks the run. */
export async function failUnavailable(
  scope: RunScope,
  step: StepRun,
  engineId: string,
  pre: PreflightResult,
): Promise<StepOutcome> {
  const fix = pre.problems.map((p) => `${p.message} — fix: ${p.fix}`).join("; ");
  await scope.store.transaction(async (tx) => {
    await tx.transitionStep(step.id, "failed", {
      eventType: EVENT.engineUnavailable,
      message: `Engine ${engineId} unavailable: ${fix}`,
      metadata: { engine_id: engineId, problems: pre.problems },
    });
    await blockRun(tx, scope.ctx.run.id, `Engine ${engineId} unavailable`, {
      reason: "engine_unavailable",
      engine_id: engineId,
    });
  });
  return "stop";
}

/** A spec error found only when the step runs (a file placeholder missing, a prompt gone): block. */
export async function failOnSpec(
  scope: RunScope,
  step: StepRun,
  err: StepResolutionError,
): Promise<StepOutcome> {
  await scope.store.transaction(async (tx) => {
    await tx.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.specValidationError,
      message: `${err.pointer}: ${err.message}`,
      metadata: { pointer: err.pointer, error: err.message, step: step.stepName },
    });
    await tx.transitionStep(step.id, "failed", {
      eventType: EVENT.stepFailed,
      message: "Spec validation failed; nothing executed",
      metadata: { reason: "spec_validation_error" },
    });
    await blockRun(tx, scope.ctx.run.id, "Spec validation failed", { reason: "spec_validation_error" });
  });
  return "stop";
}

/** A budget that refuses (before a call) or was overrun (after one) in strict mode fails the step. */
export async function failOnBudget(
  scope: RunScope,
  step: StepRun,
  breach: { message: string; metadata: Record<string, unknown> },
): Promise<StepOutcome> {
  await scope.store.transaction(async (tx) => {
    await tx.transitionStep(step.id, "failed", {
      eventType: EVENT.budgetExceeded,
      message: breach.message,
      metadata: breach.metadata,
    });
    await blockRun(tx, scope.ctx.run.id, breach.message, { reason: "budget_exceeded", step: step.stepName });
  });
  return "stop";
}

/** A directive file that cannot be reset or read (malformed, or leading out of the worktree). */
function failOnDirective(
  scope: RunScope,
  step: StepRun,
  err: DirectiveError,
  frame: Frame,
): Promise<StepOutcome> {
  return failStep(
    scope,
    step,
    {
      reason: "directive:invalid",
      message: err.message,
      cause: { eventType: EVENT.directiveInvalid, message: err.message, metadata: { error: err.message } },
    },
    frame,
  );
}

export function resolveFor(scope: RunScope, step: StepRun, engine: Engine): ResolvedStep {
  const { ctx, deps } = scope;
  const entry = ctx.steps.get(step.stepName)!;
  const qaEngine = entry.spec.qa?.engine_id ?? ctx.config.qa.engine ?? engine.id;
  return resolveStep(entry.spec, entry.index, ctx.roots, {
    promptRequired: engine.capabilities.promptRequired,
    fileInputs: engine.capabilities.fileInputs,
    qaFileInputs: deps.registry.has(qaEngine)
      ? deps.registry.get(qaEngine).capabilities.fileInputs
      : undefined,
    placeholders: scope.ctx.spec.placeholders,
    projectName: scope.ctx.project.name,
  });
}

interface ExecResult {
  result: EngineResult;
  usage: TokenUsage;
  /** Set when the budget forbade another attempt. */
  refused?: { message: string; metadata: Record<string, unknown> };
}

/**
 * One exec call, repeated while it fails retryably (rate limit, server error, stall) and retries remain,
 * after the delay the provider hinted or an exponential backoff. Every attempt is charged, and the
 * budget is checked again before each retry.
 */
async function callWithRetries(
  scope: RunScope,
  step: StepRun,
  account: BudgetAccount,
  engine: Engine,
  request: EngineRequest,
  model: string | null,
  setup: CallSetup,
): Promise<ExecResult> {
  const { ctx, signal } = scope;
  const retries = ctx.steps.get(step.stepName)!.spec.retry?.engine_errors ?? ctx.config.engineRetries;
  const live: Json = {};
  for (let n = 1; ; n++) {
    const { result, transcriptError } = await callEngine(
      engine,
      request,
      signal,
      { path: setup.transcript("exec", n), roots: [ctx.roots.protocolRoot] },
      async (event) => {
        if (event.type !== "started") return;
        // recorded at once: should this runner die, whoever takes the run over can stop the process
        // it left and continue the agent's session instead of starting it again
        const process = event.pid ? identify(event.pid) : null;
        if (process) live.engine_process = { ...process };
        if (event.sessionId) Object.assign(live, { session_id: event.sessionId, session_engine: engine.id });
        if (process || event.sessionId)
          await scope.store.updateStepRun(step.id, { runtimeState: { ...step.runtimeState, ...live } });
      },
    );
    if (transcriptError)
      await scope.store.appendEvent({
        ...eventBase(scope, step),
        eventType: EVENT.outputRefused,
        message: `transcript not written: ${transcriptError}`,
        metadata: { phase: "exec", attempt: n },
      });
    const usage = result.usage ?? estimatedUsage(request.prompt, result.finalMessage);
    await charge(account, "exec", engine.id, model, usage);
    const error = result.error;
    await recordStall(scope, step, {
      phase: "exec",
      engineId: engine.id,
      model,
      call: n,
      idleTimeoutMs: request.idleTimeoutMs,
      error,
    });
    if (result.ok || !error?.retryable || n > retries || signal.aborted) return { result, usage };
    const budget = await checkBudget(account, "exec", estimateTokens(request.prompt));
    if (!budget.ok) return { result, usage, refused: budget };
    const delayMs = retryDelayMs(error, n);
    await scope.store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.engineRetry,
      message: `${engine.id}: ${error.kind}: retry ${n}/${retries} in ${delayMs} ms`,
      metadata: {
        engine_id: engine.id,
        model,
        attempt: n,
        delay_ms: delayMs,
        error,
        usage: usageMeta(usage),
      },
    });
    await sleep(delayMs, undefined, { signal }).catch(() => undefined);
  }
}

export async function executeStep(scope: RunScope, stepRunId: number, frame: Frame): Promise<StepOutcome> {
  const { store, ctx, signal } = scope;
  let step = await store.getStepRun(stepRunId);
  const entry = ctx.steps.get(step.stepName)!;
  const engineId = engineIdFor(ctx, step.stepName);
  const engine = scope.deps.registry.get(engineId);
  const settings = engineSettings(ctx, engineId);
  const pre = await scope.preflight(engine, settings);
  if (!pre.ok) return failUnavailable(scope, step, engineId, pre);

  let resolved: ResolvedStep;
  try {
    resolved = resolveFor(scope, step, engine);
  } catch (err) {
    if (!(err instanceof StepResolutionError)) throw err;
    return failOnSpec(scope, step, err);
  }

  const model = modelFor(ctx.config, "exec", engineId, entry.spec.model);
  const directiveSpec = entry.spec.directive ?? undefined;
  try {
    // a stale directive from an earlier run of the step must never be read as this run's
    if (directiveSpec) resetDirective(ctx.roots.workspace, directiveSpec);
  } catch (err) {
    if (!(err instanceof DirectiveError)) throw err;
    return failOnDirective(scope, step, err, frame);
  }

  const attempt = Number(step.runtimeState.attempts ?? 0) + 1;
  const promptVersions = { exec: resolved.promptVersion };
  const outputsMeta = { protocol: resolved.outputs.protocol, aux: resolved.outputs.aux };
  const requireChanges = entry.spec.qa?.require_changes ?? ctx.config.qa.requireChanges;
  const account = stepAccount(scope, step);
  const setup = callSetup(ctx, step, attempt);
  const request = (): EngineRequest => ({
    role: "exec",
    prompt: resolved.prompt,
    cwd: ctx.roots.workspace,
    model: model ?? undefined,
    inputs: resolved.inputs,
    env: setup.env,
    sandbox: entry.spec.sandbox ?? ctx.config.sandbox,
    timeoutMs: setup.timeoutMs,
    idleTimeoutMs: setup.idleTimeoutMs,
    maxOutputBytes: ctx.config.maxOutputBytes,
    settings,
    reasoningEffort: entry.spec.reasoning_effort ?? undefined,
    // an interrupted or looped step continues its agent session where the engine can
    resumeSessionId: engine.capabilities.resume ? sessionOf(step.runtimeState, engineId) : undefined,
  });
  const path = await onEnginePath({
    account,
    phase: "exec",
    engineId,
    prompt: resolved.prompt,
    gate: scope.deps.engineGate,
    signal,
    admitted: async (estimate) => {
      // only a run with checkpoints has a base commit to find among the other steps
      const steps = checkpointsEnabled(ctx) ? await store.listStepRuns(ctx.run.id) : [];
      const { triggered: _cleared, ...state } = step.runtimeState;
      step = await store.transitionStep(
        step.id,
        "running",
        {
          eventType: EVENT.stepStarted,
          message: `Step ${step.stepName} started on ${engineId}${model ? ` (${model})` : ""}`,
          metadata: {
            engine_id: engineId,
            model,
            prompt_path: resolved.promptPath,
            prompt_versions: promptVersions,
            estimated_tokens: { exec: estimate },
            outputs: outputsMeta,
            attempt,
            inline_depth: frame.depth,
          },
        },
        {
          patch: {
            engineId,
            model,
            runtimeState: {
              ...state,
              attempts: attempt,
              base_commit: stepBaseCommit(ctx, steps, step),
              // what "changed something" is measured against
              base_tree: requireChanges ? await snapshotTree(ctx.roots.workspace).catch(() => null) : null,
            },
          },
        },
      );
    },
    call: () => callWithRetries(scope, step, account, engine, request(), model, setup),
  });
  if (!path.ok) return failOnBudget(scope, step, path.refused);
  const { value: exec, estimate } = path;
  const { result, usage } = exec;
  const callMeta = {
    engine_id: engineId,
    model,
    prompt_versions: promptVersions,
    usage: usageMeta(usage),
    duration_ms: result.durationMs,
    exit_code: result.exitCode,
    session_id: result.sessionId ?? null,
  };
  if (result.sessionRestarted) {
    await store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.engineSessionRestarted,
      message: `${engineId} did not know session ${result.sessionRestarted.previousSessionId}; the step ran in a new one`,
      metadata: { ...result.sessionRestarted, session_id: result.sessionId ?? null },
    });
  }
  // kept whatever the outcome, so a resumed or looped step can continue the same agent session
  // the session the engine reported as it started counts too: a killed call reports none at its end
  const recorded = engine.capabilities.resume ? (await store.getStepRun(step.id)).runtimeState : {};
  const sessionState: Json = {
    ...step.runtimeState,
    session_id:
      result.sessionId ?? sessionOf(recorded, engineId) ?? sessionOf(step.runtimeState, engineId) ?? null,
    session_engine: engineId,
  };

  if (signal.aborted) {
    await interruptStep(scope, step, "Interrupted; the step runs again on resume", callMeta, sessionState);
    return "stop";
  }
  if (exec.refused) return failOnBudget(scope, step, exec.refused);

  if (!result.ok) {
    const e = result.error ?? {
      kind: "crash" as const,
      message: "engine reported failure without a reason",
      retryable: false,
    };
    const saved = await checkpointExecFailure(ctx, step, e.kind);
    return failStep(
      scope,
      step,
      {
        reason: "exec_failed",
        message: `execution failed (${e.kind}): ${e.message}`,
        cause: {
          eventType: EVENT.engineError,
          message: `${engineId}: ${e.kind}: ${e.message}`,
          metadata: { ...callMeta, error: e },
        },
        metadata: { ...callMeta, error_kind: e.kind, ...(saved ? { checkpoint: saved.commit } : {}) },
        patch: { runtimeState: { ...sessionState, ...(saved ? { checkpoint: saved.commit } : {}) } },
      },
      frame,
    );
  }

  try {
    const roots = [ctx.roots.protocolRoot, ctx.roots.workspace];
    for (const path of [resolved.outputs.protocol, ...Object.values(resolved.outputs.aux)])
      writeFileInside(roots, path, result.finalMessage);
  } catch (err) {
    if (!(err instanceof UnsafePathError)) throw err;
    return failStep(
      scope,
      step,
      {
        reason: "output_refused",
        message: err.message,
        cause: { eventType: EVENT.outputRefused, message: err.message, metadata: { path: err.path } },
        patch: { runtimeState: sessionState },
      },
      frame,
    );
  }
  if (result.truncatedBytes > 0) {
    await store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.outputTruncated,
      message: `${result.truncatedBytes} bytes of engine output over the ${ctx.config.maxOutputBytes}-byte cap were dropped`,
      metadata: { truncated_bytes: result.truncatedBytes, max_output_bytes: ctx.config.maxOutputBytes },
    });
  }
  step = await store.transitionStep(
    step.id,
    "needs_qa",
    {
      eventType: EVENT.stepCompleted,
      message: `Step ${step.stepName} executed in ${result.durationMs} ms`,
      metadata: { ...callMeta, outputs: outputsMeta, estimated_tokens: { exec: estimate } },
    },
    { patch: { runtimeState: { ...sessionState, outputs: outputsMeta } } },
  );
  const after = await checkBudget(account, "exec", null);
  if (!after.ok) return failOnBudget(scope, step, after);

  let directive: ReadDirective | null = null;
  if (directiveSpec) {
    try {
      directive = readDirective(ctx.roots.workspace, directiveSpec);
    } catch (err) {
      if (!(err instanceof DirectiveError)) throw err;
      return failOnDirective(scope, step, err, frame);
    }
    if (directive) {
      await store.appendEvent({
        ...eventBase(scope, step),
        eventType: EVENT.directiveRead,
        message: `Directive ${directive.action}${directive.reason ? `: ${directive.reason}` : ""}`,
        metadata: { directive },
      });
      if (directive.action === "error")
        return failStep(
          scope,
          step,
          {
            reason: "directive:error",
            message: `the agent reported an error: ${directive.reason ?? "no reason given"}`,
            metadata: { directive },
          },
          frame,
          directive,
        );
    }
  }
  return qaPhase(scope, step, resolved, result.finalMessage, setup, frame, directive);
}
