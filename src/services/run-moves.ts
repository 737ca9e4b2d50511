/**
 * The moves the use cases share, each called inside the use case's transaction after its rule has
 * allowed it. The runner owns `running` for steps: a step queued by hand waits as `pending` (or
 * `needs_qa` for QA) and the runner starts it.
 */
import { EVENT } from "../store/event-types.js";
import { canMoveProtocol, DONE_STEP_STATUSES } from "../store/status.js";
import type { Json, ProtocolRun, StepRun, Store, StoreOps } from "../store/types.js";
import { type RunFacts, readFacts } from "./action-rules.js";
import { type JobRequest, jobs } from "./dispatch.js";

/** Where an action was asked for: recorded on its events (`reason`). */
export type ActionSource = "api" | "cli";

export interface ActionContext {
  store: Store;
  source: ActionSource;
  /** Where the data dir is (protocol worktrees); default process.env. */
  env?: NodeJS.ProcessEnv;
}

const SURFACE: Record<ActionSource, string> = { api: "the API", cli: "the CLI" };
export const through = (ctx: ActionContext) => SURFACE[ctx.source];

/** Runs `fn` in one transaction with the run's facts read fresh inside it. */
export function withRun<T>(
  ctx: ActionContext,
  runId: number,
  fn: (tx: StoreOps, facts: RunFacts) => Promise<T>,
): Promise<T> {
  return ctx.store.transaction(async (tx) =>
    fn(tx, await readFacts(tx, await tx.getProtocolRun(runId), ctx.env)),
  );
}

/** A paused, blocked or failed run taken up again by hand or by CI goes back to running. */
export async function takeUpRun(
  tx: StoreOps,
  run: ProtocolRun,
  why: string,
  metadata: Json,
): Promise<ProtocolRun> {
  // a planned run is started by the runner itself (protocol_started)
  if (run.status === "planned" || run.status === "running") return run;
  return tx.transitionProtocol(
    run.id,
    "running",
    { eventType: EVENT.protocolResumed, message: `Taken up again to ${why}`, metadata },
    { expectedFrom: run.status },
  );
}

/** A failed or blocked step goes back to pending; a pending one stays. */
export async function requeueStep(
  tx: StoreOps,
  step: StepRun,
  message: string,
  retry = false,
): Promise<StepRun> {
  if (step.status === "pending") return step;
  return tx.transitionStep(
    step.id,
    "pending",
    {
      eventType: retry ? EVENT.stepRetry : EVENT.stepStatus,
      message,
      metadata: { previous_status: step.status, ...(retry ? { retries: step.retries + 1 } : {}) },
    },
    { expectedFrom: step.status, ...(retry ? { patch: { retries: step.retries + 1 } } : {}) },
  );
}

/** After a step was completed by hand or by CI: a run whose steps are all done is completed. */
export async function completeIfDone(tx: StoreOps, runId: number): Promise<ProtocolRun> {
  const run = await tx.getProtocolRun(runId);
  const steps = await tx.listStepRuns(runId);
  if (steps.length === 0 || steps.some((s) => !DONE_STEP_STATUSES.includes(s.status))) return run;
  if (!canMoveProtocol(run.status, "completed")) return run;
  return tx.transitionProtocol(
    runId,
    "completed",
    { eventType: EVENT.protocolCompleted, message: `All ${steps.length} steps completed` },
    { expectedFrom: run.status },
  );
}

/**
 * Moves a step to `needs_qa` (unless it is there) and records that its QA is queued; the job is
 * dispatched after the transaction. `cause` prefixes the messages ("CI passed").
 */
export async function queueQa(
  tx: StoreOps,
  step: StepRun,
  cause: string | null,
  metadata: Json,
): Promise<{ step: StepRun; job: JobRequest }> {
  const prefix = cause ? `${cause}; ` : "";
  const waiting =
    step.status === "needs_qa"
      ? step
      : await tx.transitionStep(
          step.id,
          "needs_qa",
          {
            eventType: EVENT.stepStatus,
            message: `${prefix}queued for QA`,
            metadata: { ...metadata, previous_status: step.status },
          },
          { expectedFrom: step.status },
        );
  await tx.appendEvent({
    protocolRunId: step.protocolRunId,
    stepRunId: step.id,
    eventType: EVENT.qaEnqueued,
    message: `${prefix}QA of ${step.stepName} queued`,
    metadata,
  });
  return { step: waiting, job: jobs.runQa(waiting) };
}
