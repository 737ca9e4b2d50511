/** Opens the Store: embedded SQLite by default, Postgres when a postgres:// URL is given. Migrates on open. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { type Dialect, Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { type Clock, systemClock } from "../shared/clock.js";
import type { Database } from "./db-schema.js";
import { guardedDialect } from "./guarded-driver.js";
import { KyselyStore } from "./kysely-store.js";
import { migrate } from "./migrations.js";
import { OutageWatch } from "./outage-watch.js";
import { StoreOpenError } from "./store-errors.js";
import type { Store } from "./types.js";

export interface OpenStoreOptions {
  /** postgres://… URL; when set, `sqlitePath` is ignored. */
  url?: string | undefined;
  sqlitePath?: string | undefined;
  /** Postgres schema to use (created when missing), so several stores can share one database. */
  pgSchema?: string | undefined;
  /** What leases and timestamps are measured by; default the system clock. */
  clock?: Clock;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/;

/** How long a query waits for a Postgres connection before the database counts as unreachable. */
const PG_CONNECT_TIMEOUT_MS = 5000;

function openSqlite(path: string): Dialect {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const database = new BetterSqlite3(path);
  // WAL lets readers (CLI status, server) run beside the writer; the busy timeout rides out short locks
  database.pragma("journal_mode = WAL");
  database.pragma("busy_timeout = 5000");
  database.pragma("foreign_keys = ON");
  database.pragma("synchronous = NORMAL");
  return new SqliteDialect({ database });
}

async function openPostgres(url: string, schema: string | undefined): Promise<Dialect> {
  if (schema !== undefined) {
    if (!SCHEMA_NAME.test(schema))
      throw new StoreOpenError(url, `invalid schema name ${JSON.stringify(schema)}`);
    const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    } finally {
      await admin.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // a database that does not answer at all (not even a refusal) fails a query instead of hanging it
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    ...(schema && { options: `-c search_path=${schema}` }),
  });
  // a connection the server dropped (restart, admin kill) is replaced on next use; unhandled, it would end the process
  const lost = (err: Error) =>
    process.stderr.write(`postgres: connection lost (${err.message}); it will be replaced\n`);
  pool.on("error", lost);
  // a connection dropped while checked out reports on the client itself; the query in flight fails on its own
  pool.on("connect", (client) => client.on("error", lost));
  return new PostgresDialect({ pool });
}

/** Where a URL points, without its password, for error messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const where = opts.url ? redact(opts.url) : (opts.sqlitePath ?? "(no location)");
  const clock = opts.clock ?? systemClock;
  const outages = new OutageWatch(clock);
  const dialectName = opts.url ? "postgres" : "sqlite";
  let db: Kysely<Database> | undefined;
  try {
    let dialect: Dialect;
    if (opts.url) dialect = await openPostgres(opts.url, opts.pgSchema);
    else if (opts.sqlitePath) dialect = openSqlite(opts.sqlitePath);
    else throw new Error("neither a database URL nor a SQLite path was given");
    db = new Kysely<Database>({ dialect: guardedDialect(dialect, { where, outages }) });
    await sql`select 1`.execute(db);
    await migrate(db as Kysely<unknown>, dialectName);
  } catch (err) {
    await db?.destroy();
    throw err instanceof StoreOpenError ? err : new StoreOpenError(where, err);
  }
  return new KyselyStore(db, { dialect: dialectName, clock, outages });
}
