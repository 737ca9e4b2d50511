/**
 * The OpenTelemetry side of run tracing, imported only when tracing is on: the SDK's tracer provider
 * with a batching OTLP/HTTP exporter (JSON), and ids that make a run's trace and root span the same
 * in every process that works on the run.
 */
import { readFileSync } from "node:fs";
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  type IdGenerator,
  RandomIdGenerator,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { TelemetrySettings } from "./telemetry-settings.js";
import {
  type LogFields,
  type RunTrace,
  type RunTraceStart,
  runTraceIds,
  type SpanAttributes,
  type Telemetry,
  type TraceSpan,
} from "./trace-model.js";

const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/** Random ids, except for the one span whose ids are given: a run's root span. */
class RunIds implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  private preset: { traceId?: string; spanId?: string } = {};

  /** Runs `start` (a synchronous startSpan) with the next trace and span id set to these. */
  with<T>(ids: { traceId: string; spanId: string }, start: () => T): T {
    this.preset = { ...ids };
    try {
      return start();
    } finally {
      this.preset = {};
    }
  }

  generateTraceId(): string {
    const id = this.preset.traceId ?? this.random.generateTraceId();
    this.preset.traceId = undefined;
    return id;
  }

  generateSpanId(): string {
    const id = this.preset.spanId ?? this.random.generateSpanId();
    this.preset.spanId = undefined;
    return id;
  }
}

function attributes(a: SpanAttributes | undefined): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(a ?? {})) if (v !== undefined && v !== null) out[k] = v;
  return out;
}

function logFieldsOf(span: Span): LogFields {
  const c = span.spanContext();
  return { trace_id: c.traceId, span_id: c.spanId, trace_flags: `0${c.traceFlags.toString(16)}` };
}

type Start = (name: string, a: SpanAttributes | undefined, parent: Context) => Span;

class OtelSpan implements TraceSpan {
  constructor(
    private readonly span: Span,
    private readonly start: Start,
  ) {}

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  get spanId(): string {
    return this.span.spanContext().spanId;
  }

  child(name: string, a?: SpanAttributes): TraceSpan {
    return new OtelSpan(this.start(name, a, trace.setSpan(ROOT_CONTEXT, this.span)), this.start);
  }

  setAttributes(a: SpanAttributes): void {
    this.span.setAttributes(attributes(a));
  }

  addEvent(name: string, a?: SpanAttributes): void {
    this.span.addEvent(name, attributes(a));
  }

  fail(message: string): void {
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  end(a?: SpanAttributes): void {
    if (a) this.setAttributes(a);
    this.span.end();
  }

  logFields(): LogFields {
    return logFieldsOf(this.span);
  }
}

export function openTelemetry(settings: TelemetrySettings & { tracesUrl: string }): Telemetry {
  const ids = new RunIds();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName, "service.version": VERSION }),
    idGenerator: ids,
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({
          url: settings.tracesUrl,
          headers: settings.headers,
          timeoutMillis: 10_000,
        }),
      }),
    ],
  });
  const tracer = provider.getTracer("tasksgodzilla", VERSION);
  const start: Start = (name, a, parent) => tracer.startSpan(name, { attributes: attributes(a) }, parent);

  function runTrace(run: RunTraceStart): RunTrace {
    const { traceId, rootSpanId } = runTraceIds(run);
    // the root span as a parent, whether or not this process is the one that will send it
    const underRoot = trace.setSpanContext(ROOT_CONTEXT, {
      traceId,
      spanId: rootSpanId,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    const marker = (name: string, a: SpanAttributes) => start(name, a, underRoot).end();
    if (run.resumed) marker("run resumed", { "tgz.run.id": String(run.runId) });
    const fields: LogFields = { trace_id: traceId, span_id: rootSpanId, trace_flags: "01" };
    return {
      traceId,
      stepAttempt: ({ stepId, attempt, attributes: a }) =>
        new OtelSpan(
          start(`step ${stepId}`, { "tgz.step": stepId, "tgz.attempt": attempt, ...a }, underRoot),
          start,
        ),
      span: (name, a) => new OtelSpan(start(name, a, underRoot), start),
      stopped: (status, reason) =>
        marker(`run ${status}`, { "tgz.run.status": status, "tgz.reason": reason }),
      end: ({ status, reason, attributes: a }) => {
        const root = ids.with({ traceId, spanId: rootSpanId }, () =>
          tracer.startSpan(
            `run ${run.name}`,
            {
              root: true,
              startTime: run.createdAt,
              attributes: attributes({
                "tgz.run.id": String(run.runId),
                "tgz.run.status": status,
                "tgz.reason": reason,
                ...run.attributes,
                ...a,
              }),
            },
            ROOT_CONTEXT,
          ),
        );
        if (status === "failed") root.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? status });
        root.end();
      },
      logFields: () => fields,
    };
  }

  return {
    enabled: true,
    runTrace,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
