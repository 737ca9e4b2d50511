/**
 * The QA half of a step: run the QA the spec declares (the QA agent only within the budget and the
 * engine's concurrency cap), commit the checkpoint, record the verdict, and hand the outcome to the
 * policies. The verdict, its checkpoint and its event land in one transaction.
 */

import { EVENT } from "../store/event-types.js";
import type { Json, StepRun } from "../store/types.js";
import { charge, checkBudget, stepAccount } from "./budget-guard.js";
import type { CallSetup } from "./call-setup.js";
import type { ReadDirective } from "./directives.js";
import { onEnginePath } from "./engine-path.js";
import { modelFor } from "./models.js";
import { type QaOutcome, runQa } from "./qa-check.js";
import type { ResolvedStep } from "./resolve-step.js";
import {
  engineSettings,
  eventBase,
  type Frame,
  type RunScope,
  type StepOutcome,
  usageMeta,
} from "./run-scope.js";
import { recordStall } from "./stall-event.js";
import { checkpointStep } from "./step-checkpoints.js";
import {
  afterFailure,
  applyDirective,
  blockRun,
  fireTriggers,
  interruptStep,
  peekLoop,
} from "./step-outcomes.js";
import { estimatedUsage } from "./token-estimate.js";
import { engineIdFor } from "./validate-run.js";

const QA_PROMPT = "quality-validator.prompt.md";

async function runDeclaredQa(
  scope: RunScope,
  step: StepRun,
  resolved: ResolvedStep,
  finalMessage: string,
  setup: CallSetup,
): Promise<{ qa: QaOutcome; refusal?: { message: string; metadata: Record<string, unknown> } }> {
  const { ctx, store, signal } = scope;
  const spec = ctx.steps.get(step.stepName)!.spec;
  const policy = spec.qa?.policy ?? ctx.config.qa.policy;
  const checks = [...(spec.qa?.checks ?? []), ...ctx.config.qa.checks];
  const execEngine = engineIdFor(ctx, step.stepName);
  const qaEngineId = spec.qa?.engine_id ?? ctx.config.qa.engine ?? execEngine;
  const agent =
    policy === "full"
      ? {
          engine: scope.deps.registry.get(qaEngineId),
          model:
            modelFor(ctx.config, "qa", qaEngineId, spec.qa?.model) ??
            (qaEngineId === execEngine ? step.model : null),
          promptRef: spec.qa?.prompt ?? ctx.config.qa.prompt ?? QA_PROMPT,
          settings: engineSettings(ctx, qaEngineId),
        }
      : undefined;
  if (policy !== "skip") {
    await store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.qaStarted,
      message: `QA (${policy}) started`,
      metadata: { policy, checks, engine_id: agent?.engine.id ?? null, model: agent?.model ?? null },
    });
  }
  let refusal: { message: string; metadata: Record<string, unknown> } | undefined;
  const qa = await runQa({
    step: spec,
    policy,
    roots: ctx.roots,
    outputs: resolved.outputs,
    qaInputs: resolved.qaInputs,
    emptyOutputAllowed: scope.deps.registry.get(execEngine).capabilities.emptyOutputAllowed === true,
    prompt: resolved.prompt,
    finalMessage,
    checks,
    changesSince:
      (spec.qa?.require_changes ?? ctx.config.qa.requireChanges)
        ? typeof step.runtimeState.base_tree === "string"
          ? step.runtimeState.base_tree
          : "(no snapshot)"
        : null,
    timeoutMs: setup.timeoutMs,
    idleTimeoutMs: setup.idleTimeoutMs,
    maxOutputBytes: ctx.config.maxOutputBytes,
    env: setup.env,
    signal,
    agent,
    transcriptPath: (n) => ({ path: setup.transcript("qa", n), roots: [ctx.roots.protocolRoot] }),
    engineRetries: spec.retry?.engine_errors ?? ctx.config.engineRetries,
    async onEnginePath(prompt, call) {
      const path = await onEnginePath({
        account: stepAccount(scope, step),
        phase: "qa",
        engineId: qaEngineId,
        prompt,
        gate: scope.deps.engineGate,
        signal,
        call,
      });
      if (path.ok) return path.value;
      refusal = path.refused;
      return undefined;
    },
  });
  return { qa, ...(refusal ? { refusal } : {}) };
}

export async function qaPhase(
  scope: RunScope,
  step: StepRun,
  resolved: ResolvedStep,
  finalMessage: string,
  setup: CallSetup,
  frame: Frame,
  directive: ReadDirective | null,
): Promise<StepOutcome> {
  const { store, ctx, signal } = scope;
  const started = Date.now();
  const { qa, refusal } = await runDeclaredQa(scope, step, resolved, finalMessage, setup);
  const qaUsage: Json[] = [];
  for (const [i, c] of qa.agentCalls.entries()) {
    const u = c.usage ?? estimatedUsage(c.prompt, c.call.result.finalMessage);
    qaUsage.push(usageMeta(u));
    await charge(stepAccount(scope, step), "qa", c.engineId, c.model, u);
    await recordStall(scope, step, {
      phase: "qa",
      engineId: c.engineId,
      model: c.model,
      call: i + 1,
      idleTimeoutMs: setup.idleTimeoutMs,
      error: c.call.result.error,
    });
    if (c.retry)
      await store.appendEvent({
        ...eventBase(scope, step),
        eventType: EVENT.engineRetry,
        message: `${c.engineId}: ${c.retry.error.kind}: QA call retried in ${c.retry.delayMs} ms`,
        metadata: {
          engine_id: c.engineId,
          model: c.model,
          phase: "qa",
          delay_ms: c.retry.delayMs,
          error: c.retry.error,
        },
      });
  }
  const repaired = qa.agentCalls.filter((c) => !c.retry).length > 1;
  if (repaired) {
    await store.appendEvent({
      ...eventBase(scope, step),
      eventType: EVENT.qaRepairRetry,
      message: "QA answer was not a valid verdict; asked once more",
      metadata: { first_answer: qa.agentCalls[0]?.call.result.finalMessage.slice(0, 2000) },
    });
  }
  if (signal.aborted) {
    await interruptStep(scope, step, "Interrupted during QA; the step runs again on resume", {});
    return "stop";
  }
  if (refusal) {
    await store.transaction(async (tx) => {
      await tx.transitionStep(step.id, "failed", {
        eventType: EVENT.budgetExceeded,
        message: refusal.message,
        metadata: refusal.metadata,
      });
      await blockRun(tx, ctx.run.id, refusal.message, { reason: "budget_exceeded", step: step.stepName });
    });
    return "stop";
  }

  const first = qa.agentCalls[0];
  const passed = qa.status === "pass" || qa.status === "skipped";
  // an agent that asks to loop past its limit fails the step: the limit is a hard stop, also on resume
  const limited =
    passed && directive?.action === "loop"
      ? (await peekLoop(scope, step.id, "directive:loop")).decision.kind === "limit"
      : false;
  const qaMeta: Json = {
    policy: qa.policy,
    verdict: qa.status,
    reason: qa.reason,
    checks: qa.checks,
    findings: qa.verdict?.findings ?? [],
    engine_id: first?.engineId ?? null,
    model: first?.model ?? null,
    prompt_versions: { exec: resolved.promptVersion, ...(first ? { qa: first.promptVersion } : {}) },
    usage: qaUsage,
    duration_ms: Date.now() - started,
    ...(directive ? { directive } : {}),
  };
  const saved = await checkpointStep(ctx, step, qa.status);
  const summary = limited
    ? "loop_limit_reached: the agent asked to loop again"
    : qa.status === "skipped"
      ? "Completed (QA skipped)"
      : `QA ${qa.status}: ${qa.reason}`.slice(0, 500);
  // a step the run moves past starts its loops afresh when it is reached again
  const movesOn = passed && directive?.action !== "loop";
  const { loop_counts: _done, ...rest } = step.runtimeState;
  const runtimeState = {
    ...(movesOn ? rest : step.runtimeState),
    ...(saved ? { checkpoint: saved.commit } : {}),
  };
  step = await store.transaction(async (tx) => {
    if (saved) {
      await tx.appendEvent({
        ...eventBase(scope, step),
        eventType: EVENT.checkpointCreated,
        message: saved.changed
          ? `Checkpoint ${saved.commit.slice(0, 10)} after ${step.stepName}`
          : `${step.stepName} changed nothing; checkpoint stays ${saved.commit.slice(0, 10)}`,
        metadata: { commit: saved.commit, changed: saved.changed, verdict: qa.status },
      });
    }
    return tx.transitionStep(
      step.id,
      passed && !limited ? "completed" : "failed",
      qa.status === "skipped"
        ? { eventType: EVENT.qaSkipped, message: `QA skipped: ${qa.reason}`, metadata: qaMeta }
        : { eventType: EVENT.qaVerdict, message: `QA ${qa.status}: ${qa.reason}`, metadata: qaMeta },
      { patch: { summary, runtimeState } },
    );
  });
  if (limited) return afterFailure(scope, step.id, "directive:loop", frame, directive);

  const over = await checkBudget(stepAccount(scope, step), "qa", null);
  if (!over.ok) {
    // the verdict stands; the run stops before anything else is spent
    await store.transaction(async (tx) => {
      await tx.appendEvent({
        ...eventBase(scope, step),
        eventType: EVENT.budgetExceeded,
        message: over.message,
        metadata: over.metadata,
      });
      await blockRun(tx, ctx.run.id, over.message, { reason: "budget_exceeded", step: step.stepName });
    });
    return "stop";
  }
  if (!passed)
    return afterFailure(scope, step.id, qa.status === "error" ? "qa_error" : "qa_failed", frame, directive);
  if (directive) {
    const steered = await applyDirective(scope, step, directive, frame);
    if (steered) return steered;
  }
  return fireTriggers(scope, step.id, frame, "qa_passed");
}
