/** Schema migrations, applied in order on open. Append new ones; never edit a shipped one. */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from "kysely";
import type { Store } from "./types.js";

type Dialect = Store["dialect"];

/** DDL written once with an `{{id}}` placeholder for the only column type the dialects disagree on. */
const INITIAL = `
CREATE TABLE projects (
  id {{id}},
  name TEXT NOT NULL,
  git_url TEXT NOT NULL,
  local_path TEXT,
  base_branch TEXT NOT NULL,
  ci_provider TEXT,
  default_models TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX projects_name ON projects (name);
CREATE TABLE protocol_runs (
  id {{id}},
  project_id INTEGER NOT NULL REFERENCES projects (id),
  protocol_name TEXT NOT NULL,
  status TEXT NOT NULL,
  base_branch TEXT NOT NULL,
  worktree_path TEXT,
  protocol_root TEXT,
  description TEXT,
  template_config TEXT NOT NULL,
  template_source TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX protocol_runs_project ON protocol_runs (project_id, id);
CREATE TABLE step_runs (
  id {{id}},
  protocol_run_id INTEGER NOT NULL REFERENCES protocol_runs (id),
  step_index INTEGER NOT NULL,
  step_name TEXT NOT NULL,
  step_type TEXT NOT NULL,
  status TEXT NOT NULL,
  retries INTEGER NOT NULL,
  model TEXT,
  engine_id TEXT,
  policy TEXT NOT NULL,
  runtime_state TEXT NOT NULL,
  summary TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX step_runs_name ON step_runs (protocol_run_id, step_name);
CREATE TABLE events (
  id {{id}},
  protocol_run_id INTEGER NOT NULL REFERENCES protocol_runs (id),
  step_run_id INTEGER REFERENCES step_runs (id),
  project_id INTEGER NOT NULL REFERENCES projects (id),
  event_type TEXT NOT NULL,
  message TEXT NOT NULL,
  metadata TEXT NOT NULL,
  spec_hash TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX events_run ON events (protocol_run_id, id);
CREATE INDEX events_project ON events (project_id, id);
CREATE TABLE token_usage (
  id {{id}},
  protocol_run_id INTEGER NOT NULL REFERENCES protocol_runs (id),
  step_run_id INTEGER REFERENCES step_runs (id),
  project_id INTEGER NOT NULL REFERENCES projects (id),
  phase TEXT NOT NULL,
  engine_id TEXT NOT NULL,
  model TEXT,
  input_tokens INTEGER NOT NULL,
  cached_input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL,
  estimated INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX token_usage_run ON token_usage (protocol_run_id);
CREATE INDEX token_usage_project ON token_usage (project_id);
CREATE INDEX token_usage_step ON token_usage (step_run_id);
`;

/** The embedded job queue and the concurrency slots shared by every worker of one database. */
const JOBS = `
CREATE TABLE jobs (
  id {{id}},
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  priority INTEGER NOT NULL,
  run_at TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  backoff_ms INTEGER NOT NULL,
  singleton_key TEXT,
  lease_token TEXT,
  lease_expires_at TEXT,
  worker_id TEXT,
  last_error TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, priority, run_at, id);
CREATE UNIQUE INDEX jobs_singleton ON jobs (singleton_key) WHERE singleton_key IS NOT NULL AND state IN ('waiting', 'delayed', 'active');
CREATE TABLE concurrency_slots (
  slot_key TEXT NOT NULL,
  slot_no INTEGER NOT NULL,
  holder TEXT NOT NULL,
  token TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  PRIMARY KEY (slot_key, slot_no)
);
`;

/**
 * One runner per run at a time (a lease with an owner and an expiry, renewed while it runs), and
 * protocol names unique per project. Duplicates an older version could create are renamed first.
 */
const RUN_LEASES = `
ALTER TABLE protocol_runs ADD COLUMN lease_owner TEXT;
ALTER TABLE protocol_runs ADD COLUMN lease_expires_at TEXT;
UPDATE protocol_runs SET protocol_name = protocol_name || '-' || id
  WHERE id NOT IN (SELECT MIN(id) FROM protocol_runs GROUP BY project_id, protocol_name);
CREATE UNIQUE INDEX protocol_runs_name ON protocol_runs (project_id, protocol_name);
`;

/** Per-project secrets given to the API (never returned; `api_token` guards the project's routes). */
const PROJECT_SECRETS = `
CREATE TABLE project_secrets (
  project_id INTEGER NOT NULL REFERENCES projects (id),
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (project_id, name)
);
`;

/** CI deliveries already applied, by the provider's delivery id: a redelivery is recorded once. */
const WEBHOOK_DELIVERIES = `
CREATE TABLE webhook_deliveries (
  provider TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  protocol_run_id INTEGER NOT NULL REFERENCES protocol_runs (id),
  received_at TEXT NOT NULL,
  PRIMARY KEY (provider, delivery_id)
);
`;

function statements(ddl: string, dialect: Dialect): string[] {
  const id = dialect === "postgres" ? "SERIAL PRIMARY KEY" : "INTEGER PRIMARY KEY AUTOINCREMENT";
  return ddl
    .replaceAll("{{id}}", id)
    .split(";")
    .map((s) => s.trim())
    .filter(Boolean);
}

function ddlMigration(ddl: string, dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      for (const statement of statements(ddl, dialect)) await sql.raw(statement).execute(db);
    },
  };
}

function provider(dialect: Dialect): MigrationProvider {
  return {
    getMigrations: async () => ({
      "0001_initial": ddlMigration(INITIAL, dialect),
      "0002_jobs": ddlMigration(JOBS, dialect),
      "0003_run_leases": ddlMigration(RUN_LEASES, dialect),
      "0004_project_secrets": ddlMigration(PROJECT_SECRETS, dialect),
      "0005_webhook_deliveries": ddlMigration(WEBHOOK_DELIVERIES, dialect),
    }),
  };
}

async function migrateOnce(db: Kysely<unknown>, dialect: Dialect, schema?: string): Promise<void> {
  const { error } = await new Migrator({
    db,
    provider: provider(dialect),
    ...(schema ? { migrationTableSchema: schema } : {}),
  }).migrateToLatest();
  if (error) throw error;
}

/**
 * Brings the schema up to date; throws with the failing migration's error. Processes that start
 * together (a server and its workers) take turns: Postgres through an advisory lock held on one
 * connection, SQLite by retrying while another process creates the tables.
 */
export async function migrate(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  if (dialect === "postgres") {
    await db.connection().execute(async (conn) => {
      await sql`SELECT pg_advisory_lock(hashtext('tasksgodzilla_migrations'))`.execute(conn);
      try {
        // the migrator looks for its own tables in every schema unless told which one is ours
        const { rows } = await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(conn);
        await migrateOnce(conn, dialect, rows[0]?.schema);
      } finally {
        await sql`SELECT pg_advisory_unlock(hashtext('tasksgodzilla_migrations'))`.execute(conn);
      }
    });
    return;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(db, dialect);
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
