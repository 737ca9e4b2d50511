/**
 * The work an action implies, and handing it over once the action's transaction has committed. A use
 * case describes its job (kind, payload, singleton key); the surface then dispatches it: the API and
 * the webhooks queue it for the workers, the CLI runs the same job handler in its own process.
 */
import type { JobKind, JobQueue } from "../queue/job-queue.js";
import { QueueUnavailableError } from "../queue/queue-errors.js";
import type { Json, ProtocolRun, StepRun } from "../store/types.js";

export interface JobRequest {
  kind: JobKind;
  payload: Json;
  /** One waiting job per key: asking twice before a worker takes it queues it once. */
  singletonKey?: string | undefined;
}

/** What a use case did, and the job that does the rest (dispatched only after its commit). */
export interface ActionOutcome {
  run: ProtocolRun;
  step?: StepRun | undefined;
  job?: JobRequest | undefined;
  message: string;
}

export interface DispatchedJob {
  id: string;
  /** The same work was already queued and this is that job. */
  deduplicated: boolean;
}

/** Hands a job over after the change that implies it committed (about `run`, when it has one). */
export type Dispatch = (job: JobRequest, run?: ProtocolRun) => Promise<DispatchedJob>;

export interface ActionDone extends Omit<ActionOutcome, "job"> {
  job?: DispatchedJob | undefined;
}

/** Dispatches the outcome's job, if it has one. */
export async function dispatchOutcome(outcome: ActionOutcome, dispatch: Dispatch): Promise<ActionDone> {
  const job = outcome.job ? await dispatch(outcome.job, outcome.run) : undefined;
  return { run: outcome.run, step: outcome.step, job, message: outcome.message };
}

/**
 * Queues the job for the workers. When the queue is away the change stays, and the error says what
 * becomes of it: a running or planning run gets its job from the reconciler.
 */
export function queueDispatch(queue: JobQueue): Dispatch {
  return async (job, run) => {
    try {
      return await queue.enqueue(
        job.kind,
        job.payload,
        job.singletonKey ? { singletonKey: job.singletonKey } : {},
      );
    } catch (err) {
      if (!(err instanceof QueueUnavailableError) || !run) throw err;
      const next =
        run.status === "running" || run.status === "planning"
          ? "the reconciler queues its job once the queue is back"
          : "ask again once the queue is back";
      throw new QueueUnavailableError(
        `${err.message}; protocol run ${run.id} is ${run.status} (saved), and ${next}`,
        { cause: err },
      );
    }
  };
}

/** The jobs actions ask for, each with the singleton key the reconciler uses too. */
export const jobs = {
  executeRun: (run: Pick<ProtocolRun, "id">): JobRequest => ({
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
  /** `remote`: the git remote to push to (default origin). */
  openPr: (run: ProtocolRun, remote?: string): JobRequest => ({
    kind: "open_pr",
    payload: { protocol_run_id: run.id, ...(remote ? { remote } : {}) },
    singletonKey: `pr:${run.id}`,
  }),
  specAudit: (scope: {
    projectId?: number | undefined;
    runId?: number | undefined;
    backfill: boolean;
  }): JobRequest => ({
    kind: "spec_audit",
    payload: {
      project_id: scope.projectId ?? null,
      protocol_run_id: scope.runId ?? null,
      backfill: scope.backfill,
    },
  }),
};
