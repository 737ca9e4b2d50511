/** Typed errors of the store: callers tell an illegal move from a lost race by class, not by message. */
import { InfrastructureError, TasksGodzillaError } from "../shared/errors.js";

/** The status machine does not allow this move (a bug or a stale request; never retried). */
export class IllegalTransitionError extends TasksGodzillaError {
  readonly code = "illegal_transition";
  constructor(kind: "protocol" | "step", id: number, from: string, to: string) {
    super(`${kind} run ${id} cannot move from ${from} to ${to}`);
  }
}

/** Someone else changed the row first (another worker, a user action): re-read and decide again. */
export class StatusConflictError extends TasksGodzillaError {
  readonly code = "status_conflict";
  override readonly retryable = true;
  constructor(kind: "protocol" | "step", id: number, expected: string, actual: string) {
    super(`${kind} run ${id} is ${actual}, expected ${expected}`);
  }
}

/**
 * The database does not answer (down, restarting, refusing connections) or stays locked past its
 * busy timeout. Raised by the store for its driver's connection failures; the same call succeeds
 * once the database is back.
 */
export class StoreUnavailableError extends InfrastructureError {
  readonly code = "database_unavailable";
  readonly backend = "database";
  constructor(where: string, cause: unknown, busy = false) {
    const why = (cause instanceof Error ? cause.message : String(cause)) || "connection failed";
    super(
      `the database at ${where} is ${busy ? "locked by another writer" : "not reachable"} (${why}); try again when it is back`,
      { cause },
    );
  }
}

/** The database could not be opened or migrated. */
export class StoreOpenError extends TasksGodzillaError {
  readonly code = "store_open_failed";
  constructor(where: string, cause: unknown) {
    super(`cannot open the store at ${where}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
}

/** A protocol name already taken in its project: pick the next number and try again. */
export class DuplicateNameError extends TasksGodzillaError {
  readonly code = "duplicate_name";
  override readonly retryable = true;
  constructor(name: string, cause: unknown) {
    super(`protocol name ${name} is already taken in this project`, { cause });
  }
}

/** Another live runner is executing this run; try again once its lease has expired. */
export class RunBusyError extends TasksGodzillaError {
  readonly code = "run_busy";
  override readonly retryable = true;
  constructor(
    runId: number,
    readonly owner: string,
    readonly retryAfterMs: number,
  ) {
    super(`run ${runId} is being executed by ${owner}; try again in ${Math.ceil(retryAfterMs / 1000)} s`);
  }
}

/** A unique-index violation, as each driver reports it. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE";
}
