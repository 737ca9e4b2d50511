/**
 * A job that will not be tried again must not leave its run looking busy: the run gets a
 * `job_failed` event and, when it was `running` or `planning` with no live runner, is blocked with
 * the job's error, in one transaction. Jobs about no run (spec audit, a legacy import) are logged only.
 */
import type { DeadLetterListener, JobInfo } from "../queue/job-queue.js";
import { errorMessage } from "../shared/errors.js";
import { EVENT } from "../store/event-types.js";
import type { Store } from "../store/types.js";
import { runOfJob } from "./job-handlers.js";
import type { WorkerLogger } from "./job-worker.js";

const BLOCKABLE = new Set(["running", "planning"]);

function runOf(job: JobInfo): number | undefined {
  try {
    return runOfJob(job.payload);
  } catch {
    return undefined; // a payload too malformed to name its run
  }
}

export function blockRunOnDeadLetter(store: Store, logger?: WorkerLogger): DeadLetterListener {
  return async (job) => {
    const fields = { job: job.id, kind: job.kind, attempts: job.attempts, error: job.lastError };
    const runId = runOf(job);
    try {
      const blocked =
        runId !== undefined &&
        (await store.transaction(async (tx) => {
          const run = await tx.getProtocolRun(runId);
          await tx.appendEvent({
            protocolRunId: runId,
            eventType: EVENT.jobFailed,
            message: `Job ${job.kind} failed after ${job.attempts} attempt(s): ${job.lastError ?? "no reason"}`,
            metadata: {
              job_id: job.id,
              kind: job.kind,
              attempts: job.attempts,
              max_attempts: job.maxAttempts,
              error: job.lastError,
            },
          });
          const heldByLiveRunner =
            run.leaseOwner !== null &&
            run.leaseExpiresAt !== null &&
            Date.parse(run.leaseExpiresAt) > store.clock.now();
          if (!BLOCKABLE.has(run.status) || heldByLiveRunner) return false;
          await tx.transitionProtocol(
            runId,
            "blocked",
            {
              eventType: EVENT.protocolBlocked,
              message: `Blocked: its ${job.kind} job failed for good (${job.lastError ?? "no reason"}); fix the cause and resume`,
              metadata: { reason: "job_failed", job_id: job.id, error: job.lastError },
            },
            { expectedFrom: run.status },
          );
          return true;
        }));
      logger?.error({ ...fields, run: runId ?? null, run_blocked: blocked }, "job dead-lettered");
    } catch (err) {
      logger?.error(
        { ...fields, run: runId ?? null, cause: errorMessage(err) },
        "job dead-lettered; recording it on the run failed",
      );
    }
  };
}
