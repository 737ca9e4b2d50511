/** Project secrets in `project_secrets`; values are kept as JSON and never logged. */
import type { Kysely } from "kysely";
import type { Database } from "./db-schema.js";
import type { SecretsRepository } from "./repositories.js";

export class SecretRows implements SecretsRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async set(projectId: number, secrets: Record<string, unknown>): Promise<void> {
    const rows = Object.entries(secrets).map(([name, value]) => ({
      project_id: projectId,
      name,
      value: JSON.stringify(value),
    }));
    if (rows.length === 0) return;
    await this.db
      .insertInto("project_secrets")
      .values(rows)
      .onConflict((oc) =>
        oc.columns(["project_id", "name"]).doUpdateSet((eb) => ({ value: eb.ref("excluded.value") })),
      )
      .execute();
  }

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

  async get(projectId: number, name: string): Promise<unknown> {
    const row = await this.db
      .selectFrom("project_secrets")
      .select("value")
      .where("project_id", "=", projectId)
      .where("name", "=", name)
      .executeTakeFirst();
    return row ? JSON.parse(row.value) : undefined;
  }

  async byName(name: string): Promise<Map<number, unknown>> {
    const rows = await this.db
      .selectFrom("project_secrets")
      .select(["project_id", "value"])
      .where("name", "=", name)
      .execute();
    return new Map(rows.map((r) => [Number(r.project_id), JSON.parse(r.value) as unknown]));
  }
}
