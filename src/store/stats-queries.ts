/** The aggregate reads behind /metrics: counts by status, tokens charged, ledger figures. */
import { type Kysely, sql } from "kysely";
import type { Database } from "./db-schema.js";
import type { LedgerFigure, StatsRepository, TokenFigure } from "./repositories.js";
import type { Store } from "./types.js";

export class StatsQueries implements StatsRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Store["dialect"],
  ) {}

  private async byStatus(table: "protocol_runs" | "step_runs"): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom(table)
      .select((eb) => ["status", eb.fn.countAll<string | number>().as("n")])
      .groupBy("status")
      .execute();
    return new Map(rows.map((r) => [r.status, Number(r.n)]));
  }

  runsByStatus(): Promise<Map<string, number>> {
    return this.byStatus("protocol_runs");
  }

  stepsByStatus(): Promise<Map<string, number>> {
    return this.byStatus("step_runs");
  }

  async tokensCharged(): Promise<TokenFigure[]> {
    const rows = await this.db
      .selectFrom("token_usage")
      .select([
        "engine_id",
        "model",
        "phase",
        sql<string | number>`SUM(input_tokens + output_tokens)`.as("n"),
      ])
      .groupBy(["engine_id", "model", "phase"])
      .execute();
    return rows.map((r) => ({ engineId: r.engine_id, model: r.model, phase: r.phase, tokens: Number(r.n) }));
  }

  async ledgerFigures(afterId: number, limit: number): Promise<LedgerFigure[]> {
    const field = (path: string) =>
      this.dialect === "postgres"
        ? sql`(metadata::json->>${sql.lit(path)})`
        : sql`json_extract(metadata, ${sql.lit(`$.${path}`)})`;
    const rows = await this.db
      .selectFrom("events")
      .select([
        "id",
        "event_type",
        sql<string | number | null>`${field("duration_ms")}`.as("duration_ms"),
        sql<string | null>`${field("verdict")}`.as("verdict"),
      ])
      .where("id", ">", afterId)
      .where("event_type", "in", ["step_completed", "qa_verdict"])
      .orderBy("id")
      .limit(limit)
      .execute();
    return rows.map((r) => {
      const ms = r.duration_ms === null ? Number.NaN : Number(r.duration_ms);
      return {
        id: Number(r.id),
        eventType: r.event_type,
        durationMs: Number.isFinite(ms) ? ms : null,
        verdict: r.verdict === null ? null : String(r.verdict),
      };
    });
  }
}
