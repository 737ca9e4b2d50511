/**
 * Per-project secrets (`secrets` of POST /projects): stored beside the project, never returned (the
 * API shows only which names are set) and never logged. `api_token` makes the project's routes ask
 * for `X-Project-Token`.
 */
import type { Kysely } from "kysely";
import type { Database } from "../store/db-schema.js";
import type { KyselyStore } from "../store/kysely-store.js";

interface SecretsTable {
  project_id: number;
  name: string;
  value: string;
}

type SecretsDb = Kysely<{ project_secrets: SecretsTable }>;

/** The secret that guards a project's routes. */
export const PROJECT_TOKEN_SECRET = "api_token";

export class ProjectSecrets {
  private readonly db: SecretsDb;

  constructor(store: KyselyStore) {
    this.db = store.kysely as unknown as SecretsDb;
  }

  /**
   * Stores (or replaces) the given secrets of a project: one statement, so all or none; with `db`
   * (a store transaction's `kysely`), in that transaction.
   */
  async set(projectId: number, secrets: Record<string, unknown>, db?: Kysely<Database>): Promise<void> {
    const rows = Object.entries(secrets).map(([name, value]) => ({
      project_id: projectId,
      name,
      value: JSON.stringify(value),
    }));
    if (rows.length === 0) return;
    await ((db as unknown as SecretsDb | undefined) ?? this.db)
      .insertInto("project_secrets")
      .values(rows)
      .onConflict((oc) =>
        oc.columns(["project_id", "name"]).doUpdateSet((eb) => ({ value: eb.ref("excluded.value") })),
      )
      .execute();
  }

  /** Secret names by project, for the projects' replies. */
  async names(projectIds: number[]): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>(projectIds.map((id) => [id, []]));
    if (projectIds.length === 0) return out;
    const rows = await this.db
      .selectFrom("project_secrets")
      .select(["project_id", "name"])
      .where("project_id", "in", projectIds)
      .orderBy("name")
      .execute();
    for (const r of rows) out.get(Number(r.project_id))?.push(r.name);
    return out;
  }

  /** The api_token of every project that has one, by project. */
  async projectTokens(): Promise<Map<number, unknown>> {
    const rows = await this.db
      .selectFrom("project_secrets")
      .select(["project_id", "value"])
      .where("name", "=", PROJECT_TOKEN_SECRET)
      .execute();
    return new Map(rows.map((r) => [Number(r.project_id), JSON.parse(r.value) as unknown]));
  }

  async get(projectId: number, name: string): Promise<unknown> {
    const row = await this.db
      .selectFrom("project_secrets")
      .select("value")
      .where("project_id", "=", projectId)
      .where("name", "=", name)
      .executeTakeFirst();
    return row ? JSON.parse(row.value) : undefined;
  }
}
