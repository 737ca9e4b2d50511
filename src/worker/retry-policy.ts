/**
 * Which job failures are worth another attempt (one used up each time): our own errors may say so
 * themselves; a connection refused or dropped by something else the job talks to (a git host's
 * API), a Postgres serialisation failure or deadlock, are transient too. Anything else (a bug, bad
 * input) is not, and goes to the dead letters. An outage of the database or the queue is not a
 * failure of the job at all: the worker recognises its InfrastructureError before asking this.
 */
import { isConnectionFault } from "../shared/connection-faults.js";
import { TasksGodzillaError } from "../shared/errors.js";

/** SQLSTATE: serialization failure, deadlock detected. */
const PG_RETRY_STATES = new Set(["40001", "40P01"]);

export function isTransientError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (TasksGodzillaError.is(e) && e.retryable) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && PG_RETRY_STATES.has(code)) return true;
  }
  return isConnectionFault(err);
}
