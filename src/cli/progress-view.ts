/**
 * Live per-step progress for `tgz run`: reads new events from the store (never from the runner), so
 * it shows exactly what any other reader of the store would see.
 */
import type { Event, Store } from "../store/types.js";
import { formatTokens } from "./format.js";

const POLL_MS = 200;

function describe(e: Event): string | undefined {
  const m = e.metadata as Record<string, unknown>;
  const usage = m.usage as { total?: number; estimated?: boolean } | undefined;
  const tokens =
    usage?.total !== undefined ? ` ${formatTokens(usage.total)} tok${usage.estimated ? " (est.)" : ""}` : "";
  switch (e.eventType) {
    case "step_started":
      return `▶ ${m.engine_id}${m.model ? `/${m.model}` : ""} attempt ${m.attempt}`;
    case "step_completed":
      return `✓ executed in ${((Number(m.duration_ms) || 0) / 1000).toFixed(1)}s${tokens}`;
    case "step_failed":
    case "engine_error":
    case "step_stalled":
    case "engine_unavailable":
    case "budget_exceeded":
    case "budget_warning":
    case "spec_validation_error":
    case "loop_limit_reached":
    case "trigger_depth_exceeded":
    case "trigger_cycle_detected":
      return `✗ ${e.eventType}: ${e.message}`;
    case "qa_verdict":
    case "qa_skipped":
    case "loop_decision":
    case "trigger_decision":
    case "trigger_enqueued":
    case "protocol_completed":
    case "protocol_blocked":
    case "paused":
      return `• ${e.message}`;
    default:
      return undefined;
  }
}

export class ProgressView {
  private cursor = 0;
  private readonly started = Date.now();
  private readonly stepNames = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly runId: number,
    private readonly write: (line: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.polling = this.polling.then(() => this.poll());
    }, POLL_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.polling;
    await this.poll();
  }

  private async poll(): Promise<void> {
    const events = await this.store.listEvents({ protocolRunId: this.runId, afterId: this.cursor });
    if (events.length > 0 && events.some((e) => e.stepRunId && !this.stepNames.has(e.stepRunId))) {
      for (const s of await this.store.listStepRuns(this.runId)) this.stepNames.set(s.id, s.stepName);
    }
    for (const e of events) {
      this.cursor = e.id;
      const text = describe(e);
      if (!text) continue;
      const elapsed = ((Date.now() - this.started) / 1000).toFixed(1).padStart(6);
      const step = e.stepRunId ? (this.stepNames.get(e.stepRunId) ?? "") : "";
      this.write(`${elapsed}s ${step.padEnd(20)} ${text}`);
    }
  }
}
