/** Queue failures callers decide on by class. */
import { TasksGodzillaError } from "../shared/errors.js";

/**
 * The job goes back to the queue for another worker (or a later attempt): whatever it was doing must
 * stop without deciding the run's fate, so the next claimer continues where it stopped.
 */
export abstract class JobHandoffError extends TasksGodzillaError {
  override readonly retryable = true;
}

/** The lease token is no longer the job's: it expired and another worker took it, or it was cancelled. */
export class LeaseLostError extends JobHandoffError {
  readonly code = "lease_lost";
  constructor(jobId: string) {
    super(`job ${jobId}: this worker no longer holds its lease`);
  }
}

/** The worker is shutting down gracefully and hands its jobs back to the queue. */
export class WorkerStoppingError extends JobHandoffError {
  readonly code = "worker_stopping";
  constructor(workerId: string) {
    super(`worker ${workerId} is stopping; its jobs go back to the queue`);
  }
}
