/** The store backends every repository test runs against: SQLite in a temp dir and the local Postgres. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openStore } from "../../src/store/open-store.js";
import type { Store } from "../../src/store/types.js";

export const PG_URL = process.env.TASKSGODZILLA_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A fresh store per call; Postgres stores get their own schema so parallel runs never collide. */
export async function freshStore(backend: "sqlite" | "postgres"): Promise<Store> {
  if (backend === "sqlite")
    return openStore({ sqlitePath: join(mkdtempSync(join(tmpdir(), "tgz-store-")), "t.db") });
  const schema = `t_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  return openStore({ url: PG_URL, pgSchema: schema });
}

/** Drops every test schema this process created (names carry the pid). */
export async function dropTestSchemas(): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ nspname: string }>(
      "select nspname from pg_namespace where nspname like $1",
      [`t\\_${process.pid}\\_%`],
    );
    for (const r of rows) await client.query(`DROP SCHEMA ${r.nspname} CASCADE`);
  } finally {
    await client.end();
  }
}
