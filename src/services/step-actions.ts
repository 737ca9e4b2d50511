/**
 * Working on one step by hand: run the next runnable step or a given one (alone, with its QA and
 * policies; the run pauses after it), run QA again on a step's outputs, approve a step. Each checks
 * its rule inside one transaction that writes its moves and events (a refusal writes nothing).
 */
import { EVENT } from "../store/event-types.js";
import type { StepRun, StoreOps } from "../store/types.js";
import { enforce, nextRunnableStep, type RunFacts, runActionRule, stepActionRule } from "./action-rules.js";
import { type ActionOutcome, jobs } from "./dispatch.js";
import {
  type ActionContext,
  completeIfDone,
  queueQa,
  requeueStep,
  takeUpRun,
  through,
  withRun,
} from "./run-moves.js";

async function runOne(tx: StoreOps, ctx: ActionContext, f: RunFacts, step: StepRun): Promise<ActionOutcome> {
  const taken = await takeUpRun(tx, f.run, `run step ${step.stepName}`, { reason: ctx.source });
  const queued = await requeueStep(tx, step, `Queued to run (was ${step.status})`);
  await tx.appendEvent({
    protocolRunId: f.run.id,
    stepRunId: step.id,
    eventType: EVENT.stepEnqueued,
    message: `${step.stepName} queued`,
  });
  return { run: taken, step: queued, job: jobs.executeStep(queued), message: `${step.stepName} queued` };
}

/** The first pending, blocked or failed step runs alone in an `execute_step` job, then the run pauses. */
export function runNextStep(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("run_next_step", f));
    return runOne(tx, ctx, f, nextRunnableStep(f.steps)!);
  });
}

/** Runs `fn` in one transaction with the step and its run's facts read fresh inside it. */
async function withStep<T>(
  ctx: ActionContext,
  stepRunId: number,
  fn: (tx: StoreOps, f: RunFacts, step: StepRun) => Promise<T>,
): Promise<T> {
  const { protocolRunId } = await ctx.store.getStepRun(stepRunId);
  return withRun(ctx, protocolRunId, (tx, f) => fn(tx, f, f.steps.find((s) => s.id === stepRunId)!));
}

/** A pending, blocked or failed step runs alone, as `runNextStep` for this step. */
export function runStep(ctx: ActionContext, stepRunId: number): Promise<ActionOutcome> {
  return withStep(ctx, stepRunId, async (tx, f, step) => {
    enforce(stepActionRule("run", step, f));
    return runOne(tx, ctx, f, step);
  });
}

/** QA runs again (then the policies) on what a step already produced; the step is not executed again. */
export function runQa(ctx: ActionContext, stepRunId: number): Promise<ActionOutcome> {
  return withStep(ctx, stepRunId, async (tx, f, step) => {
    enforce(stepActionRule("run_qa", step, f));
    const taken = await takeUpRun(tx, f.run, `check step ${step.stepName}`, { reason: ctx.source });
    const qa = await queueQa(tx, step, null, { source: ctx.source });
    return { run: taken, ...qa, message: `QA of ${step.stepName} queued` };
  });
}

/** A step completed by hand (`manual_approval`); a run whose steps are then all done completes. */
export function approveStep(ctx: ActionContext, stepRunId: number): Promise<ActionOutcome> {
  return withStep(ctx, stepRunId, async (tx, f, step) => {
    const done = enforce(stepActionRule("approve", step, f));
    if (done) return { run: f.run, step, message: done };
    const approved = await tx.transitionStep(
      step.id,
      "completed",
      {
        eventType: EVENT.manualApproval,
        message: `Approved through ${through(ctx)}`,
        metadata: { previous_status: step.status, reason: ctx.source },
      },
      { expectedFrom: step.status },
    );
    return { run: await completeIfDone(tx, f.run.id), step: approved, message: `${step.stepName} approved` };
  });
}
