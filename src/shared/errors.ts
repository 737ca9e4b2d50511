/**
 * Base of the closed failure taxonomy. Callers decide by `code` (or `instanceof`), never by parsing
 * messages. `Symbol.for` makes the check work across duplicated package copies.
 */
const MARK = Symbol.for("tasksgodzilla.error");

export abstract class TasksGodzillaError extends Error {
  abstract readonly code: string;
  /** Whether repeating the same operation may succeed. */
  readonly retryable: boolean = false;
  readonly [MARK] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  static is(value: unknown): value is TasksGodzillaError {
    return typeof value === "object" && value !== null && MARK in value;
  }
}

/** A request named something that does not exist (run, step, project, engine …). */
export class NotFoundError extends TasksGodzillaError {
  readonly code = "not_found";
  constructor(
    readonly kind: string,
    readonly key: string | number,
  ) {
    super(`${kind} ${JSON.stringify(key)} not found`);
  }
}

/** Input that can never succeed as given. */
export class InvalidInputError extends TasksGodzillaError {
  readonly code = "invalid_input";
}

/**
 * An abort reason meaning the work goes back for another process (its job was handed back: a lost
 * lease, a worker stopping, a lost engine slot): whatever was under way stops without deciding the
 * run's fate, so whoever takes the work next continues where it stopped.
 */
export abstract class HandoffError extends TasksGodzillaError {
  override readonly retryable = true;
}

/**
 * A backend the work depends on (the database, the queue's Redis) cannot be reached or is too busy
 * to answer: nothing is wrong with the work itself, and the same call succeeds once it is back. The
 * store and the queue adapters turn their drivers' connection failures into these (the one place
 * that decides what counts as infrastructure); the API answers 503, the worker retries the job
 * without using up an attempt, and the runner's and worker's leases ride it out.
 */
export abstract class InfrastructureError extends TasksGodzillaError {
  override readonly retryable = true;
  /** What is away, for messages and for /health: "database", "queue". */
  abstract readonly backend: string;
}

/** The infrastructure failure in `err` or its causes, if any. */
export function infrastructureFailure(err: unknown): InfrastructureError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++)
    if (e instanceof InfrastructureError) return e;
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
