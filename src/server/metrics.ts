/**
 * Prometheus text metrics: request and webhook counters kept in process, and at scrape time the
 * runs and steps by status, tokens by engine and model, and queue depth read from the store and queue.
 */
import { sql } from "kysely";
import type { JobQueue } from "../queue/job-queue.js";
import type { KyselyStore } from "../store/kysely-store.js";

type Labels = Record<string, string | number>;

const labelText = (l: Labels) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, "_")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};

export class Metrics {
  private readonly counters = new Map<string, Map<string, { labels: Labels; value: number }>>();

  inc(name: string, labels: Labels, by = 1): void {
    const series = this.counters.get(name) ?? new Map<string, { labels: Labels; value: number }>();
    this.counters.set(name, series);
    const key = labelText(labels);
    const cur = series.get(key) ?? { labels, value: 0 };
    cur.value += by;
    series.set(key, cur);
  }

  async render(store: KyselyStore, queue: JobQueue): Promise<string> {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string, rows: { labels: Labels; value: number }[]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const r of rows) lines.push(`${name}${labelText(r.labels)} ${r.value}`);
    };
    const db = store.kysely;
    for (const [table, name, help] of [
      ["protocol_runs", "tasksgodzilla_protocol_runs", "Protocol runs by status."],
      ["step_runs", "tasksgodzilla_step_runs", "Step runs by status."],
    ] as const) {
      const rows = await db
        .selectFrom(table)
        .select((eb) => ["status", eb.fn.countAll<string>().as("n")])
        .groupBy("status")
        .execute();
      family(
        name,
        "gauge",
        help,
        rows.map((r) => ({ labels: { status: r.status }, value: Number(r.n) })),
      );
    }
    const tokens = await db
      .selectFrom("token_usage")
      .select(["engine_id", "model", "phase", sql<string>`SUM(input_tokens + output_tokens)`.as("n")])
      .groupBy(["engine_id", "model", "phase"])
      .execute();
    family(
      "tasksgodzilla_tokens_total",
      "counter",
      "Tokens charged (input + output) by engine, model and phase.",
      tokens.map((r) => ({
        labels: { engine: r.engine_id, model: r.model ?? "", phase: r.phase },
        value: Number(r.n),
      })),
    );
    // durations from the ledger: what workers recorded, wherever they ran
    const ms =
      store.dialect === "postgres"
        ? sql<number>`(metadata::json->>'duration_ms')::float`
        : sql<number>`json_extract(metadata, '$.duration_ms')`;
    const durations = await db
      .selectFrom("events")
      .select(["event_type", sql<string>`SUM(${ms})`.as("sum"), sql<string>`COUNT(${ms})`.as("n")])
      .where("event_type", "in", ["step_completed", "qa_verdict"])
      .groupBy("event_type")
      .execute();
    for (const [type, name, help] of [
      ["step_completed", "tasksgodzilla_step_duration_seconds", "Engine time of executed steps."],
      ["qa_verdict", "tasksgodzilla_qa_duration_seconds", "Time of QA checks and QA agents."],
    ] as const) {
      const row = durations.find((d) => d.event_type === type);
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} summary`);
      lines.push(`${name}_sum ${Number(row?.sum ?? 0) / 1000}`, `${name}_count ${Number(row?.n ?? 0)}`);
    }
    const counts = await queue.counts();
    family(
      "tasksgodzilla_queue_jobs",
      "gauge",
      "Jobs by state.",
      Object.entries(counts).map(([state, n]) => ({ labels: { state }, value: n })),
    );
    for (const [name, series] of this.counters)
      family(name, "counter", name.replaceAll("_", " "), [...series.values()]);
    return `${lines.join("\n")}\n`;
  }
}
