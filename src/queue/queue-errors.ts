/** Queue failures callers decide on by class. */
import { HandoffError, InfrastructureError } from "../shared/errors.js";

/** The lease token is no longer the job's: it expired and another worker took it, or it was cancelled. */
export class LeaseLostError extends HandoffError {
  readonly code = "lease_lost";
  constructor(jobId: string) {
    super(`job ${jobId}: this worker no longer holds its lease`);
  }
}

/** The worker is shutting down gracefully and hands its jobs back to the queue. */
export class WorkerStoppingError extends HandoffError {
  readonly code = "worker_stopping";
  constructor(workerId: string) {
    super(`worker ${workerId} is stopping; its jobs go back to the queue`);
  }
}

/** The queue's backend (Redis) does not answer: the call failed fast, and may succeed later. */
export class QueueUnavailableError extends InfrastructureError {
  readonly code = "queue_unavailable";
  readonly backend = "queue";
}
