/**
 * The single runner path. Every step of every run, whatever its engine, goes through
 * resolve → budget → engine → outputs → QA → policies here, and every decision becomes an event
 * written in the same transaction as the state change it causes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { settingsFor } from "../config/engine-settings.js";
import type {
  Engine,
  EngineRequest,
  EngineResult,
  EngineSettings,
  PreflightResult,
  TokenUsage,
} from "../engines/engine-port.js";
import { errorMessage } from "../shared/errors.js";
import { DEFAULT_MAX_ITERATIONS, type TriggerPolicy } from "../spec/normalize-policy.js";
import { DONE_STEP_STATUSES } from "../store/status.js";
import type { Json, ProtocolRun, StepRun, StoreOps, UsagePhase } from "../store/types.js";
import {
  type BudgetDecision,
  type BudgetLimits,
  type BudgetSpent,
  checkAfterCall,
  checkBeforeCall,
} from "./budget.js";
import { callEngine } from "./call-engine.js";
import { DirectiveError, type ReadDirective, readDirective, resetDirective } from "./directives.js";
import { EVENT } from "./event-types.js";
import { decideLoop, decideTrigger, type OutcomeReason, type StepState } from "./policy-decisions.js";
import { runQa } from "./qa-check.js";
import { type ResolvedStep, resolveStep, StepResolutionError } from "./resolve-step.js";
import { loadRunContext, type RunContext, type RunnerDeps } from "./run-context.js";
import { baseCommit, checkpointStep, restoreForLoop } from "./step-checkpoints.js";
import { estimatedUsage, estimateTokens, totalTokens } from "./token-estimate.js";
import { engineIdFor, validateRun } from "./validate-run.js";

export type StepOutcome = "continue" | "stop";

/** How often a running protocol looks for a pause or cancel made elsewhere. */
const STATUS_POLL_MS = 1000;

/** Longest wait before retrying an engine call, whatever the provider asked for. */
const MAX_RETRY_DELAY_MS = 60_000;

export interface RunOptions {
  /** Aborting pauses the run: the engine is killed and the step goes back to pending. */
  signal?: AbortSignal;
}

interface Frame {
  depth: number;
  /** Step ids of the inline call stack, for cycle detection. */
  chain: string[];
}

function usageMeta(u: TokenUsage): Json {
  return {
    input: u.input,
    cached_input: u.cachedInput,
    output: u.output,
    reasoning: u.reasoning,
    total: totalTokens(u),
    estimated: u.estimated,
  };
}

function sessionOf(state: Json): string | undefined {
  return typeof state.session_id === "string" && state.session_id ? state.session_id : undefined;
}

function counts(state: Json, key: string): Record<string, number> {
  const v = state[key];
  return v && typeof v === "object" ? (v as Record<string, number>) : {};
}

export class ProtocolRunner {
  private readonly preflights = new Map<string, Promise<PreflightResult>>();

  constructor(private readonly deps: RunnerDeps) {}

  private get store() {
    return this.deps.store;
  }

  /** Runs a protocol until it completes, blocks, pauses or is cancelled. Returns the final run row. */
  async run(runId: number, opts: RunOptions = {}): Promise<ProtocolRun> {
    const stored = await this.store.getProtocolRun(runId);
    // a run created from an invalid spec stays blocked with its pointers until the spec is fixed
    if (stored.templateConfig.spec_meta?.status === "invalid") return stored;
    const ctx = await loadRunContext(this.deps, runId);
    if (ctx.run.status === "completed" || ctx.run.status === "cancelled") return ctx.run;
    await this.start(ctx);

    const errors = validateRun(ctx, this.deps.registry);
    if (errors.length > 0) {
      const steps = await this.store.listStepRuns(runId);
      await this.store.transaction(async (tx) => {
        for (const e of errors) {
          const step = steps.find((s) => s.stepName === e.stepId);
          await tx.appendEvent({
            protocolRunId: runId,
            stepRunId: step?.id ?? null,
            eventType: EVENT.specValidationError,
            message: `${e.pointer}: ${e.message}`,
            metadata: { pointer: e.pointer, error: e.message, step: e.stepId },
          });
        }
        for (const id of new Set(errors.map((e) => e.stepId))) {
          const step = steps.find((s) => s.stepName === id);
          if (step && step.status !== "failed") {
            await tx.transitionStep(step.id, "failed", {
              eventType: EVENT.stepFailed,
              message: "Spec validation failed; nothing executed",
              metadata: { reason: "spec_validation_error" },
            });
          }
        }
        await tx.transitionProtocol(runId, "blocked", {
          eventType: EVENT.protocolBlocked,
          message: `Spec validation failed (${errors.length} error(s))`,
          metadata: { reason: "spec_validation_error", errors },
        });
      });
      return this.store.getProtocolRun(runId);
    }

    // a pause or cancel from elsewhere (API, another process) interrupts the engine call under way
    const stopper = new AbortController();
    const signal = AbortSignal.any([opts.signal ?? new AbortController().signal, stopper.signal]);
    const watch = setInterval(() => {
      this.store
        .getProtocolRun(runId)
        .then((r) => {
          if (r.status === "paused" || r.status === "cancelled") stopper.abort(new Error(`run ${r.status}`));
        })
        .catch(() => undefined);
    }, STATUS_POLL_MS);
    try {
      for (;;) {
        const run = await this.store.getProtocolRun(runId);
        if (run.status !== "running") return run;
        if (signal.aborted) return this.pauseIfRunning(this.store, runId);
        const steps = await this.store.listStepRuns(runId);
        const next = steps.filter((s) => s.status === "pending").sort((a, b) => a.stepIndex - b.stepIndex)[0];
        if (!next) return this.finish(runId, steps);
        const outcome = await this.executeStep(ctx, next.id, { depth: 0, chain: [] }, signal);
        if (outcome === "stop") return this.store.getProtocolRun(runId);
      }
    } finally {
      clearInterval(watch);
    }
  }

  /** Moves the run to running; steps a crash left mid-flight and failed steps are set to pending again. */
  private async start(ctx: RunContext): Promise<void> {
    const runId = ctx.run.id;
    const steps = await this.store.listStepRuns(runId);
    await this.store.transaction(async (tx) => {
      if (ctx.run.status !== "running") {
        const resumed = ["paused", "blocked", "failed"].includes(ctx.run.status);
        await tx.transitionProtocol(runId, "running", {
          eventType: resumed ? EVENT.protocolResumed : EVENT.protocolStarted,
          message: resumed ? `Protocol resumed from ${ctx.run.status}` : "Protocol started",
        });
      }
      for (const s of steps) {
        if (s.status === "running" || s.status === "needs_qa") {
          await tx.transitionStep(s.id, "pending", {
            eventType: EVENT.stepRecovered,
            message: `Step was ${s.status} when its run stopped; it runs again`,
            metadata: { previous_status: s.status },
          });
        } else if (s.status === "failed" || s.status === "blocked") {
          await tx.transitionStep(
            s.id,
            "pending",
            {
              eventType: EVENT.stepRetry,
              message: `Retrying step (was ${s.status})`,
              metadata: { retries: s.retries + 1 },
            },
            { patch: { retries: s.retries + 1 } },
          );
        }
      }
    });
  }

  private async finish(runId: number, steps: StepRun[]): Promise<ProtocolRun> {
    const open = steps.filter((s) => !DONE_STEP_STATUSES.includes(s.status));
    if (open.length === 0) {
      return this.store.transitionProtocol(runId, "completed", {
        eventType: EVENT.protocolCompleted,
        message: `All ${steps.length} steps completed`,
      });
    }
    return this.block(this.store, runId, `Steps not finished: ${open.map((s) => s.stepName).join(", ")}`, {
      reason: "unfinished_steps",
    });
  }

  private block(tx: StoreOps, runId: number, message: string, metadata: Json): Promise<ProtocolRun> {
    return tx.transitionProtocol(runId, "blocked", { eventType: EVENT.protocolBlocked, message, metadata });
  }

  /** Pauses an interrupted run, unless whoever interrupted it already paused or cancelled it. */
  private async pauseIfRunning(tx: StoreOps, runId: number): Promise<ProtocolRun> {
    const run = await tx.getProtocolRun(runId);
    if (run.status !== "running") return run;
    return tx.transitionProtocol(runId, "paused", {
      eventType: EVENT.protocolPaused,
      message: "Protocol paused (interrupted)",
      metadata: { reason: "interrupted" },
    });
  }

  private engineSettings(ctx: RunContext, engineId: string): EngineSettings {
    return settingsFor(ctx.config.engines, engineId, ctx.config.engineHomeRoot);
  }

  /** Once per engine and settings per runner: a binary does not appear or vanish between steps. */
  private preflight(engine: Engine, settings: EngineSettings): Promise<PreflightResult> {
    const key = `${engine.id}:${JSON.stringify(settings)}`;
    let p = this.preflights.get(key);
    if (!p) {
      p = engine.preflight(settings).catch((err) => ({
        ok: false,
        problems: [{ message: errorMessage(err), fix: "run `tgz engines` for details" }],
      }));
      this.preflights.set(key, p);
    }
    return p;
  }

  private budgetLimits(ctx: RunContext, stepId: string): BudgetLimits {
    const step = ctx.steps.get(stepId)!.spec;
    const b = ctx.config.budgets;
    return {
      mode: step.budget?.mode ?? ctx.spec.budget?.mode ?? b.mode,
      step: step.budget?.max_tokens ?? b.maxTokensPerStep,
      protocol: ctx.spec.budget?.max_tokens ?? b.maxTokensPerProtocol,
      project: b.maxTokensPerProject,
    };
  }

  /** What each limited scope has spent so far; scopes without a limit (or budgets off) are not summed. */
  private async spent(ctx: RunContext, stepRunId: number, limits: BudgetLimits): Promise<BudgetSpent> {
    const off = limits.mode === "off";
    const total = async (limit: number | undefined, scope: Parameters<StoreOps["sumUsage"]>[0]) =>
      off || limit === undefined ? 0 : (await this.store.sumUsage(scope)).total;
    const [step, protocol, project] = await Promise.all([
      total(limits.step, { stepRunId }),
      total(limits.protocol, { protocolRunId: ctx.run.id }),
      total(limits.project, { projectId: ctx.project.id }),
    ]);
    return { step, protocol, project };
  }

  /** Applies a budget decision; returns true when the step must stop. */
  private async enforceBudget(
    ctx: RunContext,
    step: StepRun,
    decision: BudgetDecision,
    phase: UsagePhase,
    when: "before_call" | "after_call",
  ): Promise<boolean> {
    if (decision.action === "allow") return false;
    const meta = { ...decision.breach, phase, when, mode: decision.action === "stop" ? "strict" : "warn" };
    const msg = `${decision.breach.scope} budget ${decision.breach.limit} tokens: ${decision.breach.spent} spent${decision.breach.estimated ? ` + ${decision.breach.estimated} estimated` : ""}`;
    if (decision.action === "warn") {
      await this.store.appendEvent({
        protocolRunId: ctx.run.id,
        stepRunId: step.id,
        eventType: EVENT.budgetWarning,
        message: msg,
        metadata: meta,
      });
      return false;
    }
    await this.store.transaction(async (tx) => {
      await tx.transitionStep(step.id, "failed", {
        eventType: EVENT.budgetExceeded,
        message: `Budget exceeded: ${msg}`,
        metadata: meta,
      });
      await this.block(tx, ctx.run.id, `Budget exceeded: ${msg}`, {
        reason: "budget_exceeded",
        step: step.stepName,
      });
    });
    return true;
  }

  private async charge(
    ctx: RunContext,
    step: StepRun,
    phase: UsagePhase,
    engineId: string,
    model: string | null,
    usage: TokenUsage,
  ) {
    await this.store.recordUsage({
      protocolRunId: ctx.run.id,
      stepRunId: step.id,
      phase,
      engineId,
      model,
      usage,
    });
  }

  /**
   * One exec call, repeated while it fails retryably (rate limit, server error) and retries remain,
   * after the delay the provider hinted or an exponential backoff. Every attempt is charged.
   */
  private async callWithRetries(
    ctx: RunContext,
    step: StepRun,
    engine: Engine,
    request: EngineRequest,
    model: string | null,
    signal: AbortSignal,
    transcript: (n: number) => string,
  ): Promise<{ result: EngineResult; usage: TokenUsage }> {
    for (let n = 1; ; n++) {
      const { result } = await callEngine(engine, request, signal, transcript(n));
      const usage = result.usage ?? estimatedUsage(request.prompt, result.finalMessage);
      await this.charge(ctx, step, "exec", engine.id, model, usage);
      const error = result.error;
      if (result.ok || !error?.retryable || n > ctx.config.engineRetries || signal.aborted)
        return { result, usage };
      const delayMs = Math.min(error.retryAfterMs ?? 1000 * 2 ** (n - 1), MAX_RETRY_DELAY_MS);
      await this.store.appendEvent({
        protocolRunId: ctx.run.id,
        stepRunId: step.id,
        eventType: EVENT.engineRetry,
        message: `${engine.id}: ${error.kind}: retry ${n}/${ctx.config.engineRetries} in ${delayMs} ms`,
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

  private async executeStep(
    ctx: RunContext,
    stepRunId: number,
    frame: Frame,
    signal: AbortSignal,
  ): Promise<StepOutcome> {
    const store = this.store;
    let step = await store.getStepRun(stepRunId);
    const entry = ctx.steps.get(step.stepName)!;
    const engineId = engineIdFor(ctx, step.stepName);
    const engine = this.deps.registry.get(engineId);

    const settings = this.engineSettings(ctx, engineId);
    const pre = await this.preflight(engine, settings);
    if (!pre.ok) {
      const fix = pre.problems.map((p) => `${p.message} — fix: ${p.fix}`).join("; ");
      await store.transaction(async (tx) => {
        await tx.transitionStep(step.id, "failed", {
          eventType: EVENT.engineUnavailable,
          message: `Engine ${engineId} unavailable: ${fix}`,
          metadata: { engine_id: engineId, problems: pre.problems },
        });
        await this.block(tx, ctx.run.id, `Engine ${engineId} unavailable`, {
          reason: "engine_unavailable",
          engine_id: engineId,
        });
      });
      return "stop";
    }

    let resolved: ResolvedStep;
    try {
      resolved = resolveStep(entry.spec, entry.index, ctx.roots, {
        promptRequired: engine.capabilities.promptRequired,
        placeholders: ctx.spec.placeholders,
        projectName: ctx.project.name,
      });
    } catch (err) {
      if (!(err instanceof StepResolutionError)) throw err;
      await store.transaction(async (tx) => {
        await tx.appendEvent({
          protocolRunId: ctx.run.id,
          stepRunId: step.id,
          eventType: EVENT.specValidationError,
          message: `${err.pointer}: ${err.message}`,
          metadata: { pointer: err.pointer, error: err.message, step: step.stepName },
        });
        await tx.transitionStep(step.id, "failed", {
          eventType: EVENT.stepFailed,
          message: "Spec validation failed; nothing executed",
          metadata: { reason: "spec_validation_error" },
        });
        await this.block(tx, ctx.run.id, "Spec validation failed", { reason: "spec_validation_error" });
      });
      return "stop";
    }

    const model = entry.spec.model ?? ctx.config.models.exec ?? null;
    const estimate = estimateTokens(resolved.prompt);
    const limits = this.budgetLimits(ctx, step.stepName);
    if (
      await this.enforceBudget(
        ctx,
        step,
        checkBeforeCall(limits, await this.spent(ctx, step.id, limits), estimate),
        "exec",
        "before_call",
      )
    )
      return "stop";

    const attempt = Number(step.runtimeState.attempts ?? 0) + 1;
    const promptVersions = { exec: resolved.promptVersion };
    const outputsMeta = { protocol: resolved.outputs.protocol, aux: resolved.outputs.aux };
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
          runtimeState: { ...step.runtimeState, attempts: attempt, base_commit: await baseCommit(ctx) },
        },
      },
    );

    const timeoutMs =
      (entry.spec.timeout_seconds ?? entry.spec.exec_timeout_seconds ?? ctx.config.timeoutSeconds) * 1000;
    const env = {
      TASKSGODZILLA_RUN_ID: String(ctx.run.id),
      TASKSGODZILLA_STEP_ID: step.stepName,
      TASKSGODZILLA_PROTOCOL_DIR: ctx.roots.protocolRoot,
    };
    const transcript = (phase: string, n: number) =>
      join(
        ctx.roots.protocolRoot,
        "logs",
        `${step.stepName}.${phase}.${attempt}${n > 1 ? `.${n}` : ""}.jsonl`,
      );
    const directiveSpec = entry.spec.directive ?? undefined;
    if (directiveSpec) resetDirective(ctx.roots.workspace, directiveSpec);
    const request: EngineRequest = {
      role: "exec",
      prompt: resolved.prompt,
      cwd: ctx.roots.workspace,
      model: model ?? undefined,
      inputs: resolved.inputs,
      env,
      sandbox: entry.spec.sandbox ?? ctx.config.sandbox,
      timeoutMs,
      maxOutputBytes: ctx.config.maxOutputBytes,
      settings,
      reasoningEffort: entry.spec.reasoning_effort ?? undefined,
      // an interrupted or looped step continues its agent session where the engine can
      resumeSessionId: engine.capabilities.resume ? sessionOf(step.runtimeState) : undefined,
    };
    const release = this.deps.engineGate ? await this.deps.engineGate(engineId, signal) : undefined;
    const { result, usage } = await this.callWithRetries(ctx, step, engine, request, model, signal, (n) =>
      transcript("exec", n),
    ).finally(() => release?.());
    const callMeta = {
      engine_id: engineId,
      model,
      prompt_versions: promptVersions,
      usage: usageMeta(usage),
      duration_ms: result.durationMs,
      exit_code: result.exitCode,
      session_id: result.sessionId ?? null,
    };
    // kept whatever the outcome, so a resumed or looped step can continue the same agent session
    const sessionState = {
      ...step.runtimeState,
      session_id: result.sessionId ?? sessionOf(step.runtimeState) ?? null,
    };

    if (signal.aborted) {
      await store.transaction(async (tx) => {
        await tx.transitionStep(
          step.id,
          "pending",
          {
            eventType: EVENT.stepInterrupted,
            message: "Interrupted; the step runs again on resume",
            metadata: callMeta,
          },
          { patch: { runtimeState: sessionState } },
        );
        await this.pauseIfRunning(tx, ctx.run.id);
      });
      return "stop";
    }

    if (!result.ok) {
      const e = result.error ?? {
        kind: "crash" as const,
        message: "engine reported failure without a reason",
        retryable: false,
      };
      await store.transaction(async (tx) => {
        await tx.appendEvent({
          protocolRunId: ctx.run.id,
          stepRunId: step.id,
          eventType: EVENT.engineError,
          message: `${engineId}: ${e.kind}: ${e.message}`,
          metadata: { ...callMeta, error: e },
        });
        await tx.transitionStep(
          step.id,
          "failed",
          {
            eventType: EVENT.stepFailed,
            message: `Execution failed (${e.kind}): ${e.message}`,
            metadata: { ...callMeta, reason: "exec_failed", error_kind: e.kind },
          },
          { patch: { summary: `Execution failed (${e.kind})`, runtimeState: sessionState } },
        );
      });
      return this.afterFailure(ctx, step.id, "exec_failed", frame, signal);
    }

    for (const path of [resolved.outputs.protocol, ...Object.values(resolved.outputs.aux)]) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, result.finalMessage);
    }
    if (result.truncatedBytes > 0) {
      await store.appendEvent({
        protocolRunId: ctx.run.id,
        stepRunId: step.id,
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
      {
        patch: {
          runtimeState: { ...sessionState, outputs: outputsMeta },
        },
      },
    );
    if (
      await this.enforceBudget(
        ctx,
        step,
        checkAfterCall(limits, await this.spent(ctx, step.id, limits)),
        "exec",
        "after_call",
      )
    )
      return "stop";

    let directive: ReadDirective | null = null;
    if (directiveSpec) {
      try {
        directive = readDirective(ctx.roots.workspace, directiveSpec);
      } catch (err) {
        if (!(err instanceof DirectiveError)) throw err;
        return this.failOnDirective(
          ctx,
          step,
          EVENT.directiveInvalid,
          err.message,
          "directive:invalid",
          frame,
          signal,
        );
      }
      if (directive) {
        await store.appendEvent({
          protocolRunId: ctx.run.id,
          stepRunId: step.id,
          eventType: EVENT.directiveRead,
          message: `Directive ${directive.action}${directive.reason ? `: ${directive.reason}` : ""}`,
          metadata: { directive },
        });
      }
      if (directive?.action === "error") {
        return this.failOnDirective(
          ctx,
          step,
          EVENT.stepFailed,
          `the agent reported an error: ${directive.reason ?? "no reason given"}`,
          "directive:error",
          frame,
          signal,
        );
      }
    }

    return this.qaAndPolicies(
      ctx,
      step,
      resolved,
      result.finalMessage,
      { timeoutMs, env, transcript },
      frame,
      signal,
      directive,
    );
  }

  private async failOnDirective(
    ctx: RunContext,
    step: StepRun,
    eventType: string,
    message: string,
    reason: OutcomeReason,
    frame: Frame,
    signal: AbortSignal,
  ): Promise<StepOutcome> {
    await this.store.transaction(async (tx) => {
      if (eventType !== EVENT.stepFailed) {
        await tx.appendEvent({
          protocolRunId: ctx.run.id,
          stepRunId: step.id,
          eventType,
          message,
          metadata: { reason },
        });
      }
      await tx.transitionStep(
        step.id,
        "failed",
        { eventType: EVENT.stepFailed, message: `Step failed: ${message}`, metadata: { reason } },
        { patch: { summary: message.slice(0, 500) } },
      );
    });
    return this.afterFailure(ctx, step.id, reason, frame, signal);
  }

  private async qaAndPolicies(
    ctx: RunContext,
    step: StepRun,
    resolved: ResolvedStep,
    finalMessage: string,
    call: {
      timeoutMs: number;
      env: Record<string, string>;
      transcript: (phase: string, n: number) => string;
    },
    frame: Frame,
    signal: AbortSignal,
    directive: ReadDirective | null,
  ): Promise<StepOutcome> {
    const store = this.store;
    const spec = ctx.steps.get(step.stepName)!.spec;
    const policy = spec.qa?.policy ?? ctx.config.qa.policy;
    const checks = [...(spec.qa?.checks ?? []), ...ctx.config.qa.checks];
    let agent: Parameters<typeof runQa>[0]["agent"];
    if (policy === "full") {
      const qaEngineId = spec.qa?.engine_id ?? ctx.config.qa.engine ?? engineIdFor(ctx, step.stepName);
      agent = {
        engine: this.deps.registry.get(qaEngineId),
        model: spec.qa?.model ?? ctx.config.models.qa ?? step.model,
        promptRef: spec.qa?.prompt ?? ctx.config.qa.prompt ?? "quality-validator.prompt.md",
        settings: this.engineSettings(ctx, qaEngineId),
      };
    }
    if (policy !== "skip") {
      await store.appendEvent({
        protocolRunId: ctx.run.id,
        stepRunId: step.id,
        eventType: EVENT.qaStarted,
        message: `QA (${policy}) started`,
        metadata: { policy, checks, engine_id: agent?.engine.id ?? null, model: agent?.model ?? null },
      });
    }
    const qaStarted = Date.now();
    const qa = await runQa({
      step: spec,
      policy,
      roots: ctx.roots,
      outputs: resolved.outputs,
      prompt: resolved.prompt,
      finalMessage,
      checks,
      requireChanges: spec.qa?.require_changes ?? ctx.config.qa.requireChanges,
      timeoutMs: call.timeoutMs,
      maxOutputBytes: ctx.config.maxOutputBytes,
      env: call.env,
      signal,
      agent,
      transcriptPath: (n) => call.transcript("qa", n),
    });
    const qaUsage: TokenUsage[] = [];
    for (const c of qa.agentCalls) {
      const u = c.usage ?? estimatedUsage(c.prompt, c.call.result.finalMessage);
      qaUsage.push(u);
      await this.charge(ctx, step, "qa", c.engineId, c.model, u);
    }
    if (qa.agentCalls.length > 1) {
      await store.appendEvent({
        protocolRunId: ctx.run.id,
        stepRunId: step.id,
        eventType: EVENT.qaRepairRetry,
        message: "QA answer was not a valid verdict; asked once more",
        metadata: { first_answer: qa.agentCalls[0]?.call.result.finalMessage.slice(0, 2000) },
      });
    }
    if (signal.aborted) {
      await store.transaction(async (tx) => {
        await tx.transitionStep(step.id, "pending", {
          eventType: EVENT.stepInterrupted,
          message: "Interrupted during QA; the step runs again on resume",
        });
        await this.pauseIfRunning(tx, ctx.run.id);
      });
      return "stop";
    }
    const first = qa.agentCalls[0];
    const qaMeta: Json = {
      policy: qa.policy,
      verdict: qa.status,
      reason: qa.reason,
      checks: qa.checks,
      findings: qa.verdict?.findings ?? [],
      engine_id: first?.engineId ?? null,
      model: first?.model ?? null,
      prompt_versions: { exec: resolved.promptVersion, ...(first ? { qa: first.promptVersion } : {}) },
      usage: qaUsage.map(usageMeta),
      duration_ms: Date.now() - qaStarted,
    };
    const passed = qa.status === "pass" || qa.status === "skipped";
    const saved = await checkpointStep(ctx, step, qa.status);
    const summary =
      qa.status === "skipped" ? "Completed (QA skipped)" : `QA ${qa.status}: ${qa.reason}`.slice(0, 500);
    // the verdict, the commit that records it, and its event land together
    step = await store.transaction(async (tx) => {
      if (saved) {
        await tx.appendEvent({
          protocolRunId: ctx.run.id,
          stepRunId: step.id,
          eventType: EVENT.checkpointCreated,
          message: saved.changed
            ? `Checkpoint ${saved.commit.slice(0, 10)} after ${step.stepName}`
            : `${step.stepName} changed nothing; checkpoint stays ${saved.commit.slice(0, 10)}`,
          metadata: { commit: saved.commit, changed: saved.changed, verdict: qa.status },
        });
      }
      return tx.transitionStep(
        step.id,
        passed ? "completed" : "failed",
        qa.status === "skipped"
          ? { eventType: EVENT.qaSkipped, message: `QA skipped: ${qa.reason}`, metadata: qaMeta }
          : { eventType: EVENT.qaVerdict, message: `QA ${qa.status}: ${qa.reason}`, metadata: qaMeta },
        {
          patch: {
            summary,
            ...(saved ? { runtimeState: { ...step.runtimeState, checkpoint: saved.commit } } : {}),
          },
        },
      );
    });
    const qaLimits = this.budgetLimits(ctx, step.stepName);
    const afterQa = checkAfterCall(qaLimits, await this.spent(ctx, step.id, qaLimits));
    if (await this.enforceBudget(ctx, step, afterQa, "qa", "after_call")) return "stop";
    if (!passed)
      return this.afterFailure(ctx, step.id, qa.status === "error" ? "qa_error" : "qa_failed", frame, signal);
    if (directive) {
      const steered = await this.applyDirective(ctx, step, directive, frame, signal);
      if (steered) return steered;
    }
    return this.fireTriggers(ctx, step.id, frame, signal, "qa_passed");
  }

  private stepStates(steps: StepRun[]): StepState[] {
    return steps.map((s) => ({ id: s.stepName, index: s.stepIndex, status: s.status }));
  }

  /**
   * Loop policies decide what a failure leads to. Without a loop, a trigger on failure may still run
   * its step (a fixer, a notifier), and then the protocol blocks on the failed step.
   */
  private async afterFailure(
    ctx: RunContext,
    stepRunId: number,
    reason: OutcomeReason,
    frame: Frame,
    signal: AbortSignal,
  ): Promise<StepOutcome> {
    const loop = await this.loopBack(ctx, stepRunId, reason);
    if (loop === "looped") return "continue";
    if ((await this.fireTriggers(ctx, stepRunId, frame, signal, reason)) === "stop") return "stop";
    const step = await this.store.getStepRun(stepRunId);
    await this.block(
      this.store,
      ctx.run.id,
      `Step ${step.stepName} failed (${reason})${loop === "limit" ? "; loop limit reached" : ""}`,
      { reason, step: step.stepName },
    );
    return "stop";
  }

  /**
   * Applies the first loop policy matching `reason`: resets the steps from its target (execute-once
   * steps that completed stay done), restores the worktree, and records the decision. "limit" when
   * the policy's max_iterations is used up, which is a hard stop.
   */
  private async loopBack(
    ctx: RunContext,
    stepRunId: number,
    reason: OutcomeReason,
  ): Promise<"looped" | "none" | "limit"> {
    const store = this.store;
    const steps = await store.listStepRuns(ctx.run.id);
    const step = steps.find((s) => s.id === stepRunId)!;
    const { policies } = ctx.steps.get(step.stepName)!;
    const loopCounts = counts(step.runtimeState, "loop_counts");
    const decision = decideLoop(
      policies,
      { id: step.stepName, index: step.stepIndex, status: step.status },
      this.stepStates(steps),
      loopCounts,
      reason,
    );
    const base = { protocolRunId: ctx.run.id, stepRunId: step.id };
    if (decision.kind === "none") {
      await store.transaction(async (tx) => {
        for (const s of decision.skipped) {
          await tx.appendEvent({
            ...base,
            eventType: EVENT.loopConditionSkipped,
            message: `Loop ${s.policy.id} does not apply to ${reason}`,
            metadata: { policy: s.policy, reason, conditions: s.conditions },
          });
        }
      });
      return "none";
    }
    if (decision.kind === "limit") {
      await store.transaction(async (tx) => {
        await tx.appendEvent({
          ...base,
          eventType: EVENT.loopLimitReached,
          message: `Loop ${decision.policy.id} reached its limit of ${decision.maxIterations} iterations`,
          metadata: {
            policy: decision.policy,
            iterations: decision.iterations,
            max_iterations: decision.maxIterations,
            reason,
          },
        });
        await tx.updateStepRun(step.id, {
          summary: `loop_limit_reached after ${decision.iterations} iterations`,
        });
      });
      return "limit";
    }
    const state = {
      ...step.runtimeState,
      loop_counts: { ...loopCounts, [decision.policy.id]: decision.iterations },
      last_action: "loop_step_back",
      last_policy_id: decision.policy.id,
      last_target_step: decision.targetStep,
    };
    const doneOnce = (s: StepRun) =>
      s.status === "completed" && ctx.steps.get(s.stepName)?.spec.execute_once === true;
    const reset = steps.filter((s) => decision.reset.includes(s.stepName) && !doneOnce(s));
    const target = reset[0] ?? step;
    const worktree = await restoreForLoop(ctx, target);
    await store.transaction(async (tx) => {
      await tx.updateStepRun(step.id, { runtimeState: state });
      await tx.appendEvent({
        ...base,
        eventType: EVENT.loopDecision,
        message: `Loop ${decision.policy.id} (${decision.iterations}/${decision.maxIterations}): back to ${decision.targetStep} after ${reason}${worktree.action === "restored" ? `; worktree restored to ${String(worktree.commit).slice(0, 10)}` : ""}`,
        metadata: {
          policy: decision.policy,
          reason,
          target_step: decision.targetStep,
          target_step_index: decision.targetIndex,
          steps_reset: reset.map((s) => s.stepName),
          skipped_steps: decision.policy.skip,
          execute_once_kept: steps
            .filter((s) => decision.reset.includes(s.stepName) && doneOnce(s))
            .map((s) => s.stepName),
          iterations: decision.iterations,
          max_iterations: decision.maxIterations,
          runtime_state: state,
          worktree,
        },
      });
      for (const s of reset.filter((s) => s.status !== "pending")) {
        await tx.transitionStep(s.id, "pending", {
          eventType: EVENT.stepStatus,
          message: `Reset by loop ${decision.policy.id}`,
          metadata: { policy_id: decision.policy.id },
        });
      }
    });
    return "looped";
  }

  /**
   * What the agent's directive asks for after a step that passed QA: loop and trigger go through the
   * policies (conditions directive:loop / directive:trigger), checkpoint and pause pause the run.
   * Undefined: carry on as usual.
   */
  private async applyDirective(
    ctx: RunContext,
    step: StepRun,
    directive: ReadDirective,
    frame: Frame,
    signal: AbortSignal,
  ): Promise<StepOutcome | undefined> {
    const base = { protocolRunId: ctx.run.id, stepRunId: step.id };
    if (directive.action === "loop") {
      const loop = await this.loopBack(ctx, step.id, "directive:loop");
      if (loop === "looped") return "continue";
      if (loop === "limit") {
        await this.block(this.store, ctx.run.id, `Step ${step.stepName} asked to loop past its limit`, {
          reason: "loop_limit_reached",
          step: step.stepName,
          directive,
        });
        return "stop";
      }
      return undefined;
    }
    if (directive.action === "trigger") {
      const target = directive.triggerStep;
      if (!target || !ctx.steps.has(target)) {
        await this.store.appendEvent({
          ...base,
          eventType: EVENT.directiveInvalid,
          message: `Directive trigger names ${target ? `"${target}", which is not a step` : "no step"}`,
          metadata: { directive },
        });
        await this.block(this.store, ctx.run.id, "Directive trigger target missing", {
          reason: "directive_invalid",
          step: step.stepName,
        });
        return "stop";
      }
      const policy: TriggerPolicy = {
        behavior: "trigger",
        id: `directive:${target}`,
        conditions: ["directive:trigger"],
        triggerStep: target,
        inline: true,
        maxIterations: DEFAULT_MAX_ITERATIONS,
      };
      return this.fireTriggers(ctx, step.id, frame, signal, "directive:trigger", [policy]);
    }
    if (directive.action === "checkpoint" || directive.action === "pause") {
      await this.store.transitionProtocol(ctx.run.id, "paused", {
        eventType: EVENT.protocolPaused,
        message: `Protocol paused by ${step.stepName} (${directive.action}${directive.reason ? `: ${directive.reason}` : ""}); resume with tgz run ${ctx.run.id}`,
        metadata: { reason: "directive", directive },
      });
      return "stop";
    }
    return undefined;
  }

  /** Trigger policies may run another step after an outcome: inline under the depth guard, or queued. */
  private async fireTriggers(
    ctx: RunContext,
    stepRunId: number,
    frame: Frame,
    signal: AbortSignal,
    reason: OutcomeReason,
    extra: TriggerPolicy[] = [],
  ): Promise<StepOutcome> {
    const store = this.store;
    const steps = await store.listStepRuns(ctx.run.id);
    const step = steps.find((s) => s.id === stepRunId)!;
    const { policies } = ctx.steps.get(step.stepName)!;
    const triggerCounts = counts(step.runtimeState, "trigger_counts");
    const chain = [...frame.chain, step.stepName];
    const decision = decideTrigger(
      [...extra, ...policies],
      chain,
      frame.depth,
      ctx.config.maxInlineTriggerDepth,
      triggerCounts,
      reason,
    );
    if (decision.kind === "none") return "continue";
    const base = { protocolRunId: ctx.run.id, stepRunId: step.id };
    const policy = decision.policy;
    if (decision.kind === "cycle" || decision.kind === "limit") {
      await store.appendEvent(
        decision.kind === "cycle"
          ? {
              ...base,
              eventType: EVENT.triggerCycleDetected,
              message: `Trigger ${policy.id} not run: ${decision.chain.join(" → ")} is a cycle`,
              metadata: { policy, chain: decision.chain },
            }
          : {
              ...base,
              eventType: EVENT.triggerLimitReached,
              message: `Trigger ${policy.id} reached its limit of ${decision.maxIterations}`,
              metadata: { policy, count: decision.count, max_iterations: decision.maxIterations },
            },
      );
      return "continue";
    }
    const target = steps.find((s) => s.stepName === policy.triggerStep)!;
    await store.transaction(async (tx) => {
      await tx.updateStepRun(step.id, {
        runtimeState: {
          ...step.runtimeState,
          trigger_counts: { ...triggerCounts, [policy.id]: decision.count },
        },
      });
      const eventType =
        decision.kind === "inline"
          ? EVENT.triggerDecision
          : decision.cause === "depth_exceeded"
            ? EVENT.triggerDepthExceeded
            : EVENT.triggerEnqueued;
      await tx.appendEvent({
        ...base,
        eventType,
        message:
          decision.kind === "inline"
            ? `Trigger ${policy.id}: running ${target.stepName} inline (depth ${decision.depth})`
            : `Trigger ${policy.id}: ${target.stepName} queued (${decision.cause})`,
        metadata: {
          policy,
          reason,
          target_step_id: target.stepName,
          target_step_index: target.stepIndex,
          inline_depth: decision.depth,
          max_inline_depth: ctx.config.maxInlineTriggerDepth,
          count: decision.count,
        },
      });
      const targetState = {
        ...target.runtimeState,
        last_triggered_by: step.stepName,
        inline_trigger_depth: decision.depth,
      };
      if (target.status !== "pending") {
        await tx.transitionStep(
          target.id,
          "pending",
          {
            eventType: EVENT.stepStatus,
            message: `Triggered by ${step.stepName}`,
            metadata: { policy_id: policy.id },
          },
          { patch: { runtimeState: targetState } },
        );
      } else {
        await tx.updateStepRun(target.id, { runtimeState: targetState });
      }
    });
    if (decision.kind !== "inline") return "continue";
    return this.executeStep(ctx, target.id, { depth: decision.depth, chain }, signal);
  }
}
