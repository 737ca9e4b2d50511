/**
 * The store's one boundary for infrastructure failures: a Kysely dialect whose driver turns every
 * connection failure of the database driver (refused, reset, dropped, a pool that cannot connect,
 * Postgres shutting down, SQLite locked past its busy timeout) into a StoreUnavailableError naming
 * the database, and notes the outage. Other errors (a constraint, a bug) pass through unchanged.
 */
import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  QueryResult,
  TransactionSettings,
} from "kysely";
import { isConnectionFault } from "../shared/connection-faults.js";
import type { OutageWatch } from "./outage-watch.js";
import { StoreUnavailableError } from "./store-errors.js";

interface Guard {
  /** Where the database is, for messages (no password). */
  where: string;
  outages: OutageWatch;
}

const BUSY = /^SQLITE_(BUSY|LOCKED)/;

function translate(err: unknown, guard: Guard): unknown {
  if (!isConnectionFault(err)) return err;
  guard.outages.seen();
  const code = (err as { code?: unknown })?.code;
  return new StoreUnavailableError(guard.where, err, typeof code === "string" && BUSY.test(code));
}

async function guarded<T>(guard: Guard, call: () => Promise<T>): Promise<T> {
  try {
    const result = await call();
    guard.outages.answered();
    return result;
  } catch (err) {
    throw translate(err, guard);
  }
}

/** A connection whose queries fail with StoreUnavailableError when the database is away. */
class GuardedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly guard: Guard,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return guarded(this.guard, () => this.inner.executeQuery<R>(query));
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize);
    } catch (err) {
      throw translate(err, this.guard);
    }
  }
}

/** The driver's own connection, which its transaction and release calls need. */
const inner = (c: DatabaseConnection) => (c instanceof GuardedConnection ? c.inner : c);

/** Savepoints are left out: the store does not use them. */
class GuardedDriver implements Driver {
  constructor(
    private readonly driver: Driver,
    private readonly guard: Guard,
  ) {}

  init(): Promise<void> {
    return guarded(this.guard, () => this.driver.init());
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new GuardedConnection(
      await guarded(this.guard, () => this.driver.acquireConnection()),
      this.guard,
    );
  }

  beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return guarded(this.guard, () => this.driver.beginTransaction(inner(c), settings));
  }

  commitTransaction(c: DatabaseConnection): Promise<void> {
    return guarded(this.guard, () => this.driver.commitTransaction(inner(c)));
  }

  rollbackTransaction(c: DatabaseConnection): Promise<void> {
    return guarded(this.guard, () => this.driver.rollbackTransaction(inner(c)));
  }

  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.driver.releaseConnection(inner(c));
  }

  destroy(): Promise<void> {
    return this.driver.destroy();
  }
}

/** `dialect` with its driver guarded. */
export function guardedDialect(dialect: Dialect, guard: Guard): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => new GuardedDriver(dialect.createDriver(), guard),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
  };
}
