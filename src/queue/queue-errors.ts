/** Queue failures callers decide on by class. */
import { TasksGodzillaError } from "../shared/errors.js";

/** The lease token is no longer the job's: it expired and another worker took it, or it was cancelled. */
export class LeaseLostError extends TasksGodzillaError {
  readonly code = "lease_lost";
  constructor(jobId: string) {
    super(`job ${jobId}: this worker no longer holds its lease`);
  }
}
