/**
 * Prometheus text metrics. Kept in process: requests and webhook outcomes. Read at scrape time from
 * the store and the queue, so they cover every worker wherever it runs: runs and steps by status,
 * tokens, step and QA duration histograms, QA verdicts, queue depth and processed jobs. The original
 * TasksGodzilla's metric names are exposed too, so existing dashboards keep working.
 */
import { type RawBuilder, sql } from "kysely";
import type { JobQueue, JobState } from "../queue/job-queue.js";
import type { KyselyStore } from "../store/kysely-store.js";

type Labels = Record<string, string | number>;

const labelText = (l: Labels) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, "_")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};

/** Upper bounds (seconds) of request duration buckets. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds (seconds) of step and QA duration buckets: agent calls take seconds to an hour. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

interface Series {
  labels: Labels;
  value: number;
}

interface HistogramSeries {
  labels: Labels;
  buckets: number[];
  sum: number;
  count: number;
}

/** The jobs the queue holds in a finished state, in the original's status terms. */
const PROCESSED: Partial<Record<JobState, string>> = {
  completed: "completed",
  failed: "retried",
  dead: "failed",
};

export class Metrics {
  private readonly counters = new Map<string, Map<string, Series>>();
  private readonly histograms = new Map<string, Map<string, HistogramSeries>>();

  inc(name: string, labels: Labels, by = 1): void {
    const series = this.counters.get(name) ?? new Map<string, Series>();
    this.counters.set(name, series);
    const key = labelText(labels);
    const cur = series.get(key) ?? { labels, value: 0 };
    cur.value += by;
    series.set(key, cur);
  }

  observe(name: string, labels: Labels, seconds: number): void {
    const series = this.histograms.get(name) ?? new Map<string, HistogramSeries>();
    this.histograms.set(name, series);
    const key = labelText(labels);
    const cur = series.get(key) ?? { labels, buckets: REQUEST_BUCKETS.map(() => 0), sum: 0, count: 0 };
    REQUEST_BUCKETS.forEach((b, i) => {
      if (seconds <= b) cur.buckets[i]! += 1;
    });
    cur.sum += seconds;
    cur.count += 1;
    series.set(key, cur);
  }

  /** One HTTP request: the project's own counter and the original's two metrics. */
  request(method: string, route: string, status: number, seconds: number): void {
    this.inc("tasksgodzilla_http_requests_total", { method, route, status });
    this.inc("requests_total", {});
    this.observe("requests_duration_seconds", { path: route, method, status }, seconds);
  }

  /** One webhook delivery and what came of it (received, unauthorized, blocked, completed …). */
  webhook(provider: string, status: string): void {
    this.inc("tasksgodzilla_webhooks_total", { provider, status });
    this.inc("webhooks_total", { provider, status });
  }

  async render(store: KyselyStore, queue: JobQueue): Promise<string> {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string, rows: Series[]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const r of rows) lines.push(`${name}${labelText(r.labels)} ${r.value}`);
    };
    const histogram = (name: string, help: string, bounds: number[], rows: HistogramSeries[]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      for (const r of rows) {
        for (const [i, b] of bounds.entries())
          lines.push(`${name}_bucket${labelText({ ...r.labels, le: b })} ${r.buckets[i]}`);
        lines.push(`${name}_bucket${labelText({ ...r.labels, le: "+Inf" })} ${r.count}`);
        lines.push(
          `${name}_sum${labelText(r.labels)} ${r.sum}`,
          `${name}_count${labelText(r.labels)} ${r.count}`,
        );
      }
    };
    const db = store.kysely;
    const field = (path: string): RawBuilder<unknown> =>
      store.dialect === "postgres"
        ? sql`(metadata::json->>${sql.lit(path)})`
        : sql`json_extract(metadata, ${sql.lit(`$.${path}`)})`;

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
    const byPhaseModel = new Map<string, Series>();
    for (const r of tokens) {
      const labels = { phase: r.phase, model: r.model ?? "" };
      const cur = byPhaseModel.get(labelText(labels)) ?? { labels, value: 0 };
      cur.value += Number(r.n);
      byPhaseModel.set(labelText(labels), cur);
    }
    family(
      "codex_token_estimated_total",
      "counter",
      "Tokens by phase and model, every engine (the original's name; reported or estimated).",
      [...byPhaseModel.values()],
    );

    // durations from the ledger: what workers recorded, wherever they ran
    const real = sql.raw(store.dialect === "postgres" ? "DOUBLE PRECISION" : "REAL");
    const duration = sql<number>`CAST(${field("duration_ms")} AS ${real})`;
    const durations = await db
      .selectFrom("events")
      .select([
        "event_type",
        sql<string>`COUNT(${duration})`.as("n"),
        sql<string>`SUM(${duration})`.as("sum"),
        ...DURATION_BUCKETS.map((b, i) =>
          sql<string>`SUM(CASE WHEN ${duration} <= ${sql.lit(b * 1000)} THEN 1 ELSE 0 END)`.as(`b${i}`),
        ),
      ])
      .where("event_type", "in", ["step_completed", "qa_verdict"])
      .groupBy("event_type")
      .execute();
    for (const [type, name, help] of [
      ["step_completed", "tasksgodzilla_step_duration_seconds", "Engine time of executed steps."],
      ["qa_verdict", "tasksgodzilla_qa_duration_seconds", "Time of QA checks and QA agents."],
    ] as const) {
      const row = durations.find((d) => d.event_type === type) as Record<string, unknown> | undefined;
      histogram(name, help, DURATION_BUCKETS, [
        {
          labels: {},
          buckets: DURATION_BUCKETS.map((_, i) => Number(row?.[`b${i}`] ?? 0)),
          sum: Number(row?.sum ?? 0) / 1000,
          count: Number(row?.n ?? 0),
        },
      ]);
    }

    const verdicts = await db
      .selectFrom("events")
      .select([sql<string>`${field("verdict")}`.as("verdict"), sql<string>`COUNT(*)`.as("n")])
      .where("event_type", "=", "qa_verdict")
      .groupBy(sql`${field("verdict")}`)
      .execute();
    family(
      "qa_verdict_total",
      "counter",
      "QA verdicts (pass, fail, error).",
      verdicts.map((v) => ({ labels: { verdict: String(v.verdict ?? "unknown") }, value: Number(v.n) })),
    );

    const counts = await queue.counts();
    family(
      "tasksgodzilla_queue_jobs",
      "gauge",
      "Jobs by state.",
      Object.entries(counts).map(([state, n]) => ({ labels: { state }, value: n })),
    );
    const processed = new Map<string, Series>();
    for (const job of await queue.list({
      states: Object.keys(PROCESSED) as JobState[],
      limit: 1000,
    })) {
      const labels = { job_type: job.kind, status: PROCESSED[job.state] ?? job.state };
      const cur = processed.get(labelText(labels)) ?? { labels, value: 0 };
      cur.value += 1;
      processed.set(labelText(labels), cur);
    }
    family(
      "jobs_processed_total",
      "counter",
      "Finished jobs the queue still holds (the newest 1000), by kind and outcome: completed, retried, failed.",
      [...processed.values()],
    );

    for (const [name, series] of this.counters)
      family(name, "counter", name.replaceAll("_", " "), [...series.values()]);
    for (const [name, series] of this.histograms)
      histogram(name, "HTTP request duration by route, method and status.", REQUEST_BUCKETS, [
        ...series.values(),
      ]);
    return `${lines.join("\n")}\n`;
  }
}
