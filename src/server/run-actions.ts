/**
 * What the API's actions and CI webhooks do to runs and steps. Every status move and its event are
 * written in one transaction that checks the state it starts from (a refused action writes nothing);
 * the job that does the work is queued only after that transaction committed. The runner owns
 * `running`: a queued step waits as `pending` (or `needs_qa` for QA) and the runner starts it.
 */
import { existsSync } from "node:fs";
import type { JobKind, JobQueue } from "../queue/job-queue.js";
import { QueueUnavailableError } from "../queue/queue-errors.js";
import { projectWorkspace } from "../services/project-service.js";
import { EVENT } from "../store/event-types.js";
import { canMoveProtocol, DONE_STEP_STATUSES } from "../store/status.js";
import type { Json, ProtocolRun, StepRun, Store, StoreOps } from "../store/types.js";
import { ConflictError, RepoMissingError } from "./api-errors.js";

export interface JobRequest {
  kind: JobKind;
  payload: Json;
  /** One waiting job per key: asking twice before a worker takes it queues it once. */
  singletonKey: string;
}

export interface ActionOutcome {
  run: ProtocolRun;
  step?: StepRun | undefined;
  job?: JobRequest | undefined;
  message: string;
}

export interface ActionDone {
  run: ProtocolRun;
  step?: StepRun | undefined;
  job?: { id: string; deduplicated: boolean } | undefined;
  message: string;
}

/** Runs `decide` in one transaction, then queues the job it asked for. */
export async function perform(
  store: Store,
  queue: JobQueue,
  decide: (tx: StoreOps) => Promise<ActionOutcome>,
): Promise<ActionDone> {
  const outcome = await store.transaction(decide);
  const job = outcome.job ? await enqueueAfterCommit(queue, outcome.run, outcome.job) : undefined;
  return { run: outcome.run, step: outcome.step, job, message: outcome.message };
}

/**
 * Queues the job of a change already committed. When the queue is away the change stays, and the
 * error says what becomes of it: a running or planning run gets its job from the reconciler.
 */
export async function enqueueAfterCommit(
  queue: JobQueue,
  run: ProtocolRun,
  job: JobRequest,
): Promise<{ id: string; deduplicated: boolean }> {
  try {
    return await queue.enqueue(job.kind, job.payload, { singletonKey: job.singletonKey });
  } catch (err) {
    if (!(err instanceof QueueUnavailableError)) throw err;
    const next =
      run.status === "running" || run.status === "planning"
        ? "the reconciler queues its job once the queue is back"
        : "ask again once the queue is back";
    throw new QueueUnavailableError(
      `${err.message}; protocol run ${run.id} is ${run.status} (saved), and ${next}`,
      { cause: err },
    );
  }
}

export const jobs = {
  executeRun: (run: ProtocolRun): JobRequest => ({
    kind: "execute_protocol",
    payload: { protocol_run_id: run.id },
    singletonKey: `run:${run.id}`,
  }),
  executeStep: (step: StepRun): JobRequest => ({
    kind: "execute_step",
    payload: { protocol_run_id: step.protocolRunId, step_run_id: step.id },
    singletonKey: `step:${step.id}`,
  }),
  runQa: (step: StepRun): JobRequest => ({
    kind: "run_qa",
    payload: { protocol_run_id: step.protocolRunId, step_run_id: step.id },
    singletonKey: `qa:${step.id}`,
  }),
  plan: (run: ProtocolRun, repo: string): JobRequest => ({
    kind: "plan",
    payload: {
      protocol_run_id: run.id,
      task: run.description ?? "",
      repo,
      name: run.protocolName,
      base: run.baseBranch,
    },
    singletonKey: `plan:${run.id}`,
  }),
  openPr: (run: ProtocolRun): JobRequest => ({
    kind: "open_pr",
    payload: { protocol_run_id: run.id },
    singletonKey: `pr:${run.id}`,
  }),
};

/** The checkout an action's job works in; a 409 naming the project when this machine has none. */
export async function requireRepo(tx: StoreOps, run: ProtocolRun): Promise<string> {
  const project = await tx.getProject(run.projectId);
  const workspace = run.worktreePath ?? projectWorkspace(project);
  if (!workspace || !existsSync(workspace))
    throw new RepoMissingError(
      `project ${project.id} (${project.gitUrl}) has no local checkout${
        workspace ? ` at ${workspace}` : ""
      }; register it with local_path`,
    );
  return workspace;
}

/** The step a CI result or `retry_latest` is about: the one changed last. */
export function latestStep(steps: StepRun[], filter: (s: StepRun) => boolean = () => true) {
  return steps.filter(filter).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id)[0];
}

/** Statuses a run can be worked on by hand from (step run, run_qa, retry). */
const WORKABLE = ["planned", "paused", "blocked", "failed"];

/** A run taken up again by an action or CI: paused, blocked and failed runs go back to running. */
export async function takeUp(tx: StoreOps, run: ProtocolRun, why: string): Promise<ProtocolRun> {
  if (run.status === "running") {
    throw new ConflictError(
      `protocol run ${run.id} is running and advances by itself; pause it first to ${why}`,
    );
  }
  if (!WORKABLE.includes(run.status))
    throw new ConflictError(`protocol run ${run.id} is ${run.status}; it cannot ${why}`);
  // a planned run is started by the runner itself (protocol_started)
  if (run.status === "planned") return run;
  return tx.transitionProtocol(
    run.id,
    "running",
    { eventType: EVENT.protocolResumed, message: `Taken up again to ${why}`, metadata: { reason: "api" } },
    { expectedFrom: run.status },
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
 * queued after the transaction. `cause` prefixes the messages ("CI passed").
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
