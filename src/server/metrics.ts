/**
 * Prometheus text metrics. Kept in process: requests, webhook outcomes, and the jobs this process's
 * own worker ran (`jobs_processed_total`, `jobs_duration_seconds`). Read from the store and the
 * queue, so they cover every worker wherever it runs: runs and steps by status, tokens, queue depth;
 * and from the event ledger — only the events added since the previous scrape, added to totals kept
 * here — step and QA duration histograms and QA verdicts. The original TasksGodzilla's metric names
 * are exposed too, so existing dashboards keep working.
 */
import type { JobQueue } from "../queue/job-queue.js";
import type { Store } from "../store/types.js";
import type { JobOutcome } from "../worker/job-worker.js";

type Labels = Record<string, string | number>;

const labelText = (l: Labels) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, "_")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};

/** Upper bounds (seconds) of request duration buckets. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds (seconds) of step, QA and job duration buckets: agent calls take seconds to an hour. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

const emptySeries = (labels: Labels, bounds: number[]): HistogramSeries => ({
  labels,
  buckets: bounds.map(() => 0),
  sum: 0,
  count: 0,
});

function addTo(series: HistogramSeries, bounds: number[], seconds: number): void {
  bounds.forEach((b, i) => {
    if (seconds <= b) series.buckets[i]! += 1;
  });
  series.sum += seconds;
  series.count += 1;
}

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

interface Histogram {
  help: string;
  bounds: number[];
  series: Map<string, HistogramSeries>;
}

/** Counters of the process, with their help text. */
const COUNTER_HELP: Record<string, string> = {
  tasksgodzilla_http_requests_total: "HTTP requests by method, route and status.",
  requests_total: "HTTP requests (the original's name).",
  tasksgodzilla_webhooks_total: "Webhook deliveries by provider and outcome.",
  webhooks_total: "Webhook deliveries by provider and outcome (the original's name).",
  jobs_processed_total:
    "Jobs this process's worker finished, by kind and outcome: completed, retried, failed.",
};

/** Ledger events read per query while catching up with the ledger. */
const LEDGER_BATCH = 5000;

export class Metrics {
  private readonly counters = new Map<string, Map<string, Series>>();
  private readonly histograms = new Map<string, Histogram>();
  /** Totals over the ledger up to `cursor` (an event id): each scrape reads only what came after. */
  private readonly ledger = {
    cursor: 0,
    durations: new Map<string, HistogramSeries>(),
    verdicts: new Map<string, number>(),
  };
  private reading: Promise<void> = Promise.resolve();

  inc(name: string, labels: Labels, by = 1): void {
    const series = this.counters.get(name) ?? new Map<string, Series>();
    this.counters.set(name, series);
    const key = labelText(labels);
    const cur = series.get(key) ?? { labels, value: 0 };
    cur.value += by;
    series.set(key, cur);
  }

  observe(name: string, labels: Labels, seconds: number, help: string, bounds = REQUEST_BUCKETS): void {
    const h = this.histograms.get(name) ?? { help, bounds, series: new Map<string, HistogramSeries>() };
    this.histograms.set(name, h);
    const key = labelText(labels);
    const cur = h.series.get(key) ?? emptySeries(labels, h.bounds);
    addTo(cur, h.bounds, seconds);
    h.series.set(key, cur);
  }

  /** A job this process's worker finished: the original's jobs_processed_total and jobs_duration_seconds. */
  job(kind: string, outcome: JobOutcome, seconds: number): void {
    this.inc("jobs_processed_total", { job_type: kind, status: outcome });
    this.observe(
      "jobs_duration_seconds",
      { job_type: kind, status: outcome },
      seconds,
      "Time of the jobs this process's worker finished, by kind and outcome.",
      DURATION_BUCKETS,
    );
  }

  /** One HTTP request: the project's own counter and the original's two metrics. */
  request(method: string, route: string, status: number, seconds: number): void {
    this.inc("tasksgodzilla_http_requests_total", { method, route, status });
    this.inc("requests_total", {});
    this.observe(
      "requests_duration_seconds",
      { path: route, method, status },
      seconds,
      "HTTP request duration by route, method and status.",
    );
  }

  /**
   * Adds the ledger's step and QA durations and QA verdicts written since the last read (events
   * are numbered in commit order, so a cursor misses none). One read at a time.
   */
  private readLedger(store: Store): Promise<void> {
    const read = async () => {
      for (;;) {
        const figures = await store.stats.ledgerFigures(this.ledger.cursor, LEDGER_BATCH);
        for (const f of figures) {
          this.ledger.cursor = f.id;
          if (f.durationMs !== null) {
            const cur = this.ledger.durations.get(f.eventType) ?? emptySeries({}, DURATION_BUCKETS);
            addTo(cur, DURATION_BUCKETS, f.durationMs / 1000);
            this.ledger.durations.set(f.eventType, cur);
          }
          if (f.eventType === "qa_verdict") {
            const verdict = f.verdict ?? "unknown";
            this.ledger.verdicts.set(verdict, (this.ledger.verdicts.get(verdict) ?? 0) + 1);
          }
        }
        if (figures.length < LEDGER_BATCH) return;
      }
    };
    this.reading = this.reading.then(read, read);
    return this.reading;
  }

  /** One webhook delivery and what came of it (received, unauthorized, blocked, completed …). */
  webhook(provider: string, status: string): void {
    this.inc("tasksgodzilla_webhooks_total", { provider, status });
    this.inc("webhooks_total", { provider, status });
  }

  async render(store: Store, queue: JobQueue): Promise<string> {
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
    for (const [counts, name, help] of [
      [await store.stats.runsByStatus(), "tasksgodzilla_protocol_runs", "Protocol runs by status."],
      [await store.stats.stepsByStatus(), "tasksgodzilla_step_runs", "Step runs by status."],
    ] as const) {
      family(
        name,
        "gauge",
        help,
        [...counts].map(([status, value]) => ({ labels: { status }, value })),
      );
    }

    const tokens = await store.stats.tokensCharged();
    family(
      "tasksgodzilla_tokens_total",
      "counter",
      "Tokens charged (input + output) by engine, model and phase.",
      tokens.map((r) => ({
        labels: { engine: r.engineId, model: r.model ?? "", phase: r.phase },
        value: r.tokens,
      })),
    );
    const byPhaseModel = new Map<string, Series>();
    for (const r of tokens) {
      const labels = { phase: r.phase, model: r.model ?? "" };
      const cur = byPhaseModel.get(labelText(labels)) ?? { labels, value: 0 };
      cur.value += r.tokens;
      byPhaseModel.set(labelText(labels), cur);
    }
    family(
      "codex_token_estimated_total",
      "counter",
      "Tokens by phase and model, every engine (the original's name; reported or estimated).",
      [...byPhaseModel.values()],
    );

    // durations and verdicts from the ledger: what workers recorded, wherever they ran
    await this.readLedger(store);
    for (const [type, name, help] of [
      ["step_completed", "tasksgodzilla_step_duration_seconds", "Engine time of executed steps."],
      ["qa_verdict", "tasksgodzilla_qa_duration_seconds", "Time of QA checks and QA agents."],
    ] as const) {
      histogram(name, help, DURATION_BUCKETS, [
        this.ledger.durations.get(type) ?? emptySeries({}, DURATION_BUCKETS),
      ]);
    }
    family(
      "qa_verdict_total",
      "counter",
      "QA verdicts (pass, fail, error).",
      [...this.ledger.verdicts].map(([verdict, value]) => ({ labels: { verdict }, value })),
    );

    const counts = await queue.counts();
    family(
      "tasksgodzilla_queue_jobs",
      "gauge",
      "Jobs by state.",
      Object.entries(counts).map(([state, n]) => ({ labels: { state }, value: n })),
    );
    for (const [name, series] of this.counters)
      family(name, "counter", COUNTER_HELP[name] ?? name.replaceAll("_", " "), [...series.values()]);
    for (const [name, h] of this.histograms) histogram(name, h.help, h.bounds, [...h.series.values()]);
    return `${lines.join("\n")}\n`;
  }
}
