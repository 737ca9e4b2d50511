/**
 * A run's life cycle by hand: start, pause, resume, cancel, retry its latest failed step, open its
 * PR. Each checks its rule on the run as it is inside one transaction and writes its moves and
 * events there (a refusal writes nothing); the job that does the work is returned for the surface
 * to dispatch after the commit.
 */
import { EVENT } from "../store/event-types.js";
import { enforce, failedStep, runActionRule } from "./action-rules.js";
import { type ActionOutcome, jobs } from "./dispatch.js";
import { type ActionContext, requeueStep, takeUpRun, through, withRun } from "./run-moves.js";

/**
 * A planned run starts (running at once, so a job the queue loses is found again by the reconciler);
 * a pending run without a spec is planned from its description first; a paused run resumes.
 */
export function startRun(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("start", f));
    const { run } = f;
    const metadata = { reason: ctx.source };
    if (run.status === "paused") return resumeIn(tx, ctx, run);
    if (run.status === "pending" && run.templateConfig.protocol_spec === undefined) {
      const planning = await tx.transitionProtocol(
        run.id,
        "planning",
        { eventType: EVENT.planningEnqueued, message: "Planning queued", metadata },
        { expectedFrom: "pending" },
      );
      return { run: planning, job: jobs.plan(planning, f.workspace!), message: "planning queued" };
    }
    const started = await tx.transitionProtocol(
      run.id,
      "running",
      { eventType: EVENT.startEnqueued, message: "Run queued", metadata },
      { expectedFrom: run.status },
    );
    return { run: started, job: jobs.executeRun(started), message: "run queued" };
  });
}

async function resumeIn(
  tx: Parameters<Parameters<typeof withRun>[2]>[0],
  ctx: ActionContext,
  run: ActionOutcome["run"],
): Promise<ActionOutcome> {
  const resumed = await tx.transitionProtocol(
    run.id,
    "running",
    {
      eventType: EVENT.protocolResumed,
      message: `Resumed through ${through(ctx)}`,
      metadata: { reason: ctx.source },
    },
    { expectedFrom: "paused" },
  );
  return { run: resumed, job: jobs.executeRun(resumed), message: "resume queued" };
}

/** A paused run runs again from where it stopped. */
export function resumeRun(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("resume", f));
    return resumeIn(tx, ctx, f.run);
  });
}

/**
 * A planned or running run is held: its runner sees the pause within a second, stops the engine
 * call under way, and the step runs again on resume. A planned run is held before it starts.
 */
export function pauseRun(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("pause", f));
    const paused = await tx.transitionProtocol(
      runId,
      "paused",
      {
        eventType: EVENT.protocolPaused,
        message: `Paused through ${through(ctx)}; the engine call under way is stopped and its step runs again on resume`,
        metadata: { reason: ctx.source },
      },
      { expectedFrom: f.run.status },
    );
    return { run: paused, message: "paused" };
  });
}

/** Cancelled, with its pending and needs_qa steps; idempotent. A running step is stopped by its runner. */
export function cancelRun(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    const done = enforce(runActionRule("cancel", f));
    if (done) return { run: f.run, message: done };
    const metadata = { reason: ctx.source };
    const cancelled = await tx.transitionProtocol(
      runId,
      "cancelled",
      { eventType: EVENT.protocolCancelled, message: `Cancelled through ${through(ctx)}`, metadata },
      { expectedFrom: f.run.status },
    );
    for (const s of f.steps) {
      if (s.status === "pending" || s.status === "needs_qa")
        await tx.transitionStep(
          s.id,
          "cancelled",
          { eventType: EVENT.stepStatus, message: "Cancelled with its run", metadata },
          { expectedFrom: s.status },
        );
    }
    return { run: cancelled, message: "cancelled" };
  });
}

/** The last failed or blocked step goes back to pending (retries + 1) and the run continues from it. */
export function retryLatest(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("retry_latest", f));
    const latest = failedStep(f.steps)!;
    const taken = await takeUpRun(tx, f.run, `retry step ${latest.stepName}`, { reason: ctx.source });
    const step = await requeueStep(tx, latest, `Retry of ${latest.stepName} queued`, true);
    await tx.appendEvent({
      protocolRunId: runId,
      stepRunId: step.id,
      eventType: EVENT.stepRetryEnqueued,
      message: `Retry of ${step.stepName} queued`,
      metadata: { retries: step.retries },
    });
    return { run: taken, step, job: jobs.executeRun(taken), message: `retry of ${step.stepName} queued` };
  });
}

/** The run's branch is pushed and its PR/MR opened by an `open_pr` job. */
export function openPr(ctx: ActionContext, runId: number): Promise<ActionOutcome> {
  return withRun(ctx, runId, async (tx, f) => {
    enforce(runActionRule("open_pr", f));
    await tx.appendEvent({ protocolRunId: runId, eventType: EVENT.openPrEnqueued, message: "PR queued" });
    return { run: f.run, job: jobs.openPr(f.run), message: "PR queued" };
  });
}
