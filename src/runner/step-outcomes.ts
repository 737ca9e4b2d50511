/**
 * What a step's outcome leads to, the same for every engine: failures go to the loop policies (and
 * failure triggers), successes to the trigger policies, an agent's directive steers through both.
 * Decisions come from the pure functions in policy-decisions.ts; here they are applied and recorded,
 * each with the inputs that led to it.
 */

import { HandoffError } from "../shared/errors.js";
import { findStepIndex } from "../spec/check-references.js";
import { DEFAULT_MAX_ITERATIONS, type TriggerPolicy } from "../spec/normalize-policy.js";
import { EVENT, type EventType } from "../store/event-types.js";
import { StatusConflictError } from "../store/store-errors.js";
import type { Json, ProtocolRun, StepRun, StepRunPatch, StoreOps } from "../store/types.js";
import type { ReadDirective } from "./directives.js";
import { decideLoop, decideTrigger, type OutcomeReason, type StepState } from "./policy-decisions.js";
import { leaseLost } from "./run-lease.js";
import { counts, eventBase, type Frame, type RunScope, type StepOutcome } from "./run-scope.js";
import { restoreForLoop } from "./step-checkpoints.js";

export function blockRun(tx: StoreOps, runId: number, message: string, metadata: Json): Promise<ProtocolRun> {
  return tx.transitionProtocol(runId, "blocked", { eventType: EVENT.protocolBlocked, message, metadata });
}

/** Pauses the run, unless whoever stopped it already paused, blocked or cancelled it. */
export async function pauseIfRunning(tx: StoreOps, runId: number, message: string, metadata: Json) {
  const run = await tx.getProtocolRun(runId);
  if (run.status !== "running") return run;
  return tx.transitionProtocol(runId, "paused", { eventType: EVENT.protocolPaused, message, metadata });
}

/** The worker hands the run's job back to the queue (it lost the job, is stopping, lost an engine slot). */
export function handedOff(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof HandoffError;
}

/**
 * The step was stopped from outside (Ctrl-C, a pause or cancel elsewhere): it goes back to pending
 * and runs again on resume. After a lost lease nothing is written: the run is someone else's now.
 * When its job is handed off the run stays running, for the job's next claimer to continue.
 */
export async function interruptStep(
  scope: RunScope,
  step: StepRun,
  message: string,
  metadata: Json,
  /** What the step keeps for its next run (its agent session). */
  runtimeState?: Json,
) {
  if (leaseLost(scope.signal)) return;
  await scope.store.transaction(async (tx) => {
    // the step of a cancelled run ends cancelled with it; otherwise it runs again on resume
    const cancelled = (await tx.getProtocolStatus(scope.ctx.run.id)) === "cancelled";
    try {
      await tx.transitionStep(
        step.id,
        cancelled ? "cancelled" : "pending",
        cancelled
          ? { eventType: EVENT.stepStatus, message: "Cancelled with its run", metadata }
          : { eventType: EVENT.stepInterrupted, message, metadata },
        { expectedFrom: step.status, ...(runtimeState ? { patch: { runtimeState } } : {}) },
      );
    } catch (err) {
      // a cancel already moved the step on; it stays as the cancel left it
      if (!(err instanceof StatusConflictError)) throw err;
    }
    if (!handedOff(scope.signal))
      await pauseIfRunning(tx, scope.ctx.run.id, "Protocol paused (interrupted)", { reason: "interrupted" });
  });
}

export interface StepFailure {
  reason: OutcomeReason;
  message: string;
  /** An event recorded before the step_failed one (engine_error, directive_invalid …). */
  cause?: { eventType: EventType; message: string; metadata: Json };
  metadata?: Json;
  patch?: StepRunPatch;
}

/** Fails the step (with its cause, in one transaction) and applies what the failure leads to. */
export async function failStep(
  scope: RunScope,
  step: StepRun,
  failure: StepFailure,
  frame: Frame,
  directive: ReadDirective | null = null,
): Promise<StepOutcome> {
  await scope.store.transaction(async (tx) => {
    if (failure.cause) await tx.appendEvent({ ...eventBase(scope, step), ...failure.cause });
    await tx.transitionStep(
      step.id,
      "failed",
      {
        eventType: EVENT.stepFailed,
        message: `Step ${step.stepName} failed: ${failure.message}`,
        metadata: { ...failure.metadata, reason: failure.reason },
      },
      { patch: { summary: failure.message.slice(0, 500), ...failure.patch } },
    );
  });
  return afterFailure(scope, step.id, failure.reason, frame, directive);
}

/**
 * A failure goes to the first matching loop policy; an agent that asked to loop counts as well. With
 * no loop, a trigger on failure may still run its step (a fixer, a notifier), then the run blocks.
 */
export async function afterFailure(
  scope: RunScope,
  stepRunId: number,
  reason: OutcomeReason,
  frame: Frame,
  directive: ReadDirective | null = null,
): Promise<StepOutcome> {
  let loop = await loopBack(scope, stepRunId, reason, directive);
  if (loop === "none" && directive?.action === "loop")
    loop = await loopBack(scope, stepRunId, "directive:loop", directive);
  if (loop === "looped") return "continue";
  if ((await fireTriggers(scope, stepRunId, frame, reason)) === "stop") return "stop";
  const step = await scope.store.getStepRun(stepRunId);
  await blockRun(
    scope.store,
    scope.ctx.run.id,
    `Step ${step.stepName} failed (${reason})${loop === "limit" ? "; loop limit reached" : ""}`,
    { reason: loop === "limit" ? "loop_limit_reached" : reason, step: step.stepName },
  );
  return "stop";
}

function stepStates(steps: StepRun[]): StepState[] {
  return steps.map((s) => ({ id: s.stepName, index: s.stepIndex, status: s.status }));
}

/** The loop decision a step's policies give for `reason`, without applying it. */
export async function peekLoop(scope: RunScope, stepRunId: number, reason: OutcomeReason) {
  const steps = await scope.store.listStepRuns(scope.ctx.run.id);
  const step = steps.find((s) => s.id === stepRunId)!;
  const { policies } = scope.ctx.steps.get(step.stepName)!;
  const decision = decideLoop(
    policies,
    { id: step.stepName, index: step.stepIndex, status: step.status },
    stepStates(steps),
    counts(step.runtimeState, "loop_counts"),
    reason,
  );
  return { steps, step, decision };
}

/**
 * Applies the first loop policy matching `reason`: resets the steps from its target (execute-once
 * steps that completed stay done), restores the worktree, and records the decision. "limit" when
 * the policy's max_iterations is used up, which is a hard stop.
 */
export async function loopBack(
  scope: RunScope,
  stepRunId: number,
  reason: OutcomeReason,
  directive: ReadDirective | null,
): Promise<"looped" | "none" | "limit"> {
  const { store, ctx } = scope;
  const { steps, step, decision } = await peekLoop(scope, stepRunId, reason);
  const base = eventBase(scope, step);
  const directiveMeta = directive ? { directive } : {};
  if (decision.kind === "none") {
    if (decision.skipped.length > 0)
      await store.transaction(async (tx) => {
        for (const s of decision.skipped) {
          await tx.appendEvent({
            ...base,
            eventType: EVENT.loopConditionSkipped,
            message: `Loop ${s.policy.id} does not apply to ${reason}`,
            metadata: { policy: s.policy, reason, conditions: s.conditions, ...directiveMeta },
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
          ...directiveMeta,
        },
      });
      await tx.updateStepRun(step.id, {
        summary: `loop_limit_reached after ${decision.iterations} iterations`,
      });
    });
    return "limit";
  }
  const loopCounts = counts(step.runtimeState, "loop_counts");
  const { trigger_counts: _reset, ...stepState } = step.runtimeState;
  const state = {
    ...stepState,
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
        decision: "loop",
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
        ...directiveMeta,
      },
    });
    // a step a loop runs again may fire its triggers again: their counts bound one pass, not the run
    for (const s of reset) {
      const { trigger_counts: _reset, ...kept } = s.runtimeState;
      const patch = { runtimeState: s.id === step.id ? state : kept };
      if (s.status === "pending") await tx.updateStepRun(s.id, patch);
      else
        await tx.transitionStep(
          s.id,
          "pending",
          {
            eventType: EVENT.stepStatus,
            message: `Reset by loop ${decision.policy.id}`,
            metadata: { policy_id: decision.policy.id },
          },
          { patch },
        );
    }
  });
  return "looped";
}

/**
 * What the agent's directive asks for after a step that passed QA: loop and trigger go through the
 * policies (conditions directive:loop / directive:trigger), stop ends a loop, checkpoint and pause
 * pause the run. Undefined: carry on as usual.
 */
export async function applyDirective(
  scope: RunScope,
  step: StepRun,
  directive: ReadDirective,
  frame: Frame,
): Promise<StepOutcome | undefined> {
  const { store, ctx } = scope;
  const base = eventBase(scope, step);
  if (directive.action === "loop") {
    const loop = await loopBack(scope, step.id, "directive:loop", directive);
    return loop === "looped" ? "continue" : undefined;
  }
  if (directive.action === "stop") {
    await store.appendEvent({
      ...base,
      eventType: EVENT.loopDecision,
      message: `Loop ended by ${step.stepName} (stop${directive.reason ? `: ${directive.reason}` : ""})`,
      metadata: { decision: "stop", reason: "directive:stop", directive },
    });
    return undefined;
  }
  if (directive.action === "trigger") {
    const index = directive.triggerStep ? findStepIndex(ctx.spec.steps, directive.triggerStep) : -1;
    if (index < 0) {
      await store.transaction(async (tx) => {
        await tx.appendEvent({
          ...base,
          eventType: EVENT.directiveInvalid,
          message: `Directive trigger names ${directive.triggerStep ? `"${directive.triggerStep}", which is neither a step nor an agent of one` : "no step"}`,
          metadata: { directive },
        });
        await blockRun(tx, ctx.run.id, "Directive trigger target missing", {
          reason: "directive_invalid",
          step: step.stepName,
        });
      });
      return "stop";
    }
    const target = ctx.spec.steps[index]!.id;
    const policy: TriggerPolicy = {
      behavior: "trigger",
      id: `directive:${target}`,
      conditions: ["directive:trigger"],
      triggerStep: target,
      inline: true,
      maxIterations: DEFAULT_MAX_ITERATIONS,
    };
    return fireTriggers(scope, step.id, frame, "directive:trigger", [policy], directive);
  }
  if (directive.action === "checkpoint" || directive.action === "pause") {
    await store.transitionProtocol(ctx.run.id, "paused", {
      eventType: EVENT.protocolPaused,
      message: `Protocol paused by ${step.stepName} (${directive.action}${directive.reason ? `: ${directive.reason}` : ""}); resume with tgz run ${ctx.run.id}`,
      metadata: { reason: "directive", directive },
    });
    return "stop";
  }
  return undefined;
}

/** Trigger policies may run another step after an outcome: inline under the depth guard, or queued. */
export async function fireTriggers(
  scope: RunScope,
  stepRunId: number,
  frame: Frame,
  reason: OutcomeReason,
  extra: TriggerPolicy[] = [],
  directive: ReadDirective | null = null,
): Promise<StepOutcome> {
  const { store, ctx } = scope;
  const own = await store.getStepRun(stepRunId);
  const { policies } = ctx.steps.get(own.stepName)!;
  if (extra.length === 0 && !policies.some((p) => p.behavior === "trigger")) return "continue";
  const step = own;
  const steps = await store.listStepRuns(ctx.run.id);
  const triggerCounts = counts(step.runtimeState, "trigger_counts");
  const chain = [...frame.chain, step.stepName];
  // a policy may name its target by the agent it runs; the chain and the rows know steps by id
  const resolved = [...extra, ...policies].map((p) => {
    if (p.behavior !== "trigger") return p;
    const index = findStepIndex(ctx.spec.steps, p.triggerStep);
    return index < 0 ? p : { ...p, triggerStep: ctx.spec.steps[index]!.id };
  });
  const decision = decideTrigger(
    resolved,
    chain,
    frame.depth,
    ctx.config.maxInlineTriggerDepth,
    triggerCounts,
    reason,
  );
  if (decision.kind === "none") return "continue";
  const base = eventBase(scope, step);
  const policy = decision.policy;
  const directiveMeta = directive ? { directive } : {};
  if (decision.kind === "cycle" || decision.kind === "limit") {
    await store.appendEvent(
      decision.kind === "cycle"
        ? {
            ...base,
            eventType: EVENT.triggerCycleDetected,
            message: `Trigger ${policy.id} not run: ${decision.chain.join(" → ")} is a cycle`,
            metadata: { policy, chain: decision.chain, ...directiveMeta },
          }
        : {
            ...base,
            eventType: EVENT.triggerLimitReached,
            message: `Trigger ${policy.id} reached its limit of ${decision.maxIterations}`,
            metadata: {
              policy,
              count: decision.count,
              max_iterations: decision.maxIterations,
              ...directiveMeta,
            },
          },
    );
    // the agent asked for this work: dropping it silently would lose it, so the run stops instead
    if (directive) {
      await blockRun(
        store,
        ctx.run.id,
        `Step ${step.stepName} asked for ${policy.triggerStep}, which cannot run again (${decision.kind})`,
        {
          reason: decision.kind === "cycle" ? "trigger_cycle_detected" : "trigger_limit_reached",
          step: step.stepName,
          directive,
        },
      );
      return "stop";
    }
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
        ...directiveMeta,
      },
    });
    // "triggered" lets a trigger_only step run; it is cleared when the step starts
    const targetState = {
      ...target.runtimeState,
      last_triggered_by: step.stepName,
      inline_trigger_depth: decision.depth,
      triggered: true,
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
  return scope.runStep(target.id, { depth: decision.depth, chain });
}
