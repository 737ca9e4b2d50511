/**
 * What a run's trace is made of, shared by the no-op side and the OpenTelemetry side: the span
 * interfaces, the span names, and the ids a run's trace derives from.
 */
import { createHash } from "node:crypto";

/** Attribute values a span takes; undefined and null ones are left out. */
export type SpanAttributeValue = string | number | boolean | string[] | number[] | boolean[];
export type SpanAttributes = Record<string, SpanAttributeValue | undefined | null>;

/** The children a step attempt's span has (and `planning` / `pull_request` under the run itself). */
export const SPAN = {
  qa: "qa",
  policy: "policy_decision",
  checkpoint: "git_checkpoint",
  pullRequest: "pull_request",
  planning: "planning",
} as const;
export type SpanName = (typeof SPAN)[keyof typeof SPAN];

/** trace_id / span_id / trace_flags for a log line (pino), empty when tracing is off. */
export type LogFields = { trace_id?: string; span_id?: string; trace_flags?: string };

export interface TraceSpan {
  /** The span's ids, undefined when tracing is off. */
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  /** A child span (QA, a policy decision, the checkpoint …); end it. */
  child(name: SpanName | string, attributes?: SpanAttributes): TraceSpan;
  setAttributes(attributes: SpanAttributes): void;
  addEvent(name: string, attributes?: SpanAttributes): void;
  /** Marks the span failed (status ERROR) with the reason. */
  fail(message: string): void;
  end(attributes?: SpanAttributes): void;
  logFields(): LogFields;
}

export interface RunTraceStart {
  /** The run's id and creation time: together they name the run, and the trace id derives from them. */
  runId: string | number;
  createdAt: Date;
  /** The protocol's name (`0001-add-login`), for the root span's name. */
  name: string;
  /** This process continues a run that already ran (after a crash, a pause, a block). */
  resumed?: boolean;
  attributes?: SpanAttributes;
}

export interface RunTrace {
  readonly traceId: string | undefined;
  /** A span for one attempt of a step, under the run. */
  stepAttempt(step: { stepId: string; attempt: number; attributes?: SpanAttributes }): TraceSpan;
  /** A span under the run that is no step's (planning, the pull request). */
  span(name: SpanName | string, attributes?: SpanAttributes): TraceSpan;
  /**
   * The run stopped without ending (paused, blocked): a marker in the trace. Its root span is sent
   * when the run ends, so a resumed run continues under the same root.
   */
  stopped(status: string, reason?: string): void;
  /** The run ended (completed, failed, cancelled): sends the root span, from the run's creation to now. */
  end(outcome: { status: string; reason?: string; attributes?: SpanAttributes }): void;
  logFields(): LogFields;
}

export interface Telemetry {
  readonly enabled: boolean;
  runTrace(run: RunTraceStart): RunTrace;
  /** Sends what is buffered (before a short-lived process exits). */
  flush(): Promise<void>;
  /** Flushes and stops exporting. */
  shutdown(): Promise<void>;
}

/** The key a run's trace derives from. */
function runKey(run: Pick<RunTraceStart, "runId" | "createdAt">): string {
  return `${run.runId}@${run.createdAt.toISOString()}`;
}

function hexOf(label: string, key: string, length: number): string {
  return createHash("sha256").update(`tasksgodzilla:${label}:${key}`).digest("hex").slice(0, length);
}

/**
 * The run's trace id (32 hex) and its root span's id (16 hex), the same in every process that works
 * on the run: a resumed run needs nothing stored to continue its trace.
 */
export function runTraceIds(run: Pick<RunTraceStart, "runId" | "createdAt">): {
  traceId: string;
  rootSpanId: string;
} {
  const key = runKey(run);
  return { traceId: hexOf("trace", key, 32), rootSpanId: hexOf("root-span", key, 16) };
}
