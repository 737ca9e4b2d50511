/**
 * Tracing of runs, as the runner sees it: a trace per run whose id derives from the run, so a run that
 * resumes after a crash continues the same trace; a span per step attempt with children for the
 * engine call, QA, policy decisions, the git checkpoint and the PR; ids for log lines. With tracing
 * off every call here is a no-op on shared objects and no OpenTelemetry code is loaded.
 */
import type { TelemetrySettings } from "./telemetry-settings.js";
import type { RunTrace, Telemetry, TraceSpan } from "./trace-model.js";

export * from "./trace-model.js";

const NOOP_SPAN: TraceSpan = {
  traceId: undefined,
  spanId: undefined,
  child: () => NOOP_SPAN,
  setAttributes: () => {},
  addEvent: () => {},
  fail: () => {},
  end: () => {},
  logFields: () => ({}),
};

const NOOP_RUN: RunTrace = {
  traceId: undefined,
  stepAttempt: () => NOOP_SPAN,
  span: () => NOOP_SPAN,
  stopped: () => {},
  end: () => {},
  logFields: () => ({}),
};

/** Tracing off: every call a no-op. */
export const NO_TELEMETRY: Telemetry = {
  enabled: false,
  runTrace: () => NOOP_RUN,
  flush: async () => {},
  shutdown: async () => {},
};

/**
 * Tracing as the settings say: off (NO_TELEMETRY, nothing loaded) without a traces URL; else the
 * OpenTelemetry SDK with its OTLP/HTTP exporter, imported only now.
 */
export async function startTelemetry(settings: TelemetrySettings): Promise<Telemetry> {
  if (!settings.tracesUrl) return NO_TELEMETRY;
  const { openTelemetry } = await import("./otel-telemetry.js");
  return openTelemetry({ ...settings, tracesUrl: settings.tracesUrl });
}
