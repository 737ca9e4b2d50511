/** Small constructors for engine results, so every adapter reports failures the same way. */
import type { EngineFailure, EngineFailureKind, EngineResult, StallReport } from "./engine-port.js";

export function failure(
  kind: EngineFailureKind,
  message: string,
  extra: Partial<EngineFailure> = {},
): EngineFailure {
  return { kind, message, retryable: false, ...extra };
}

export function failedResult(error: EngineFailure, fields: Partial<EngineResult> = {}): EngineResult {
  return { ok: false, finalMessage: "", exitCode: null, truncatedBytes: 0, durationMs: 0, ...fields, error };
}

/** A duration for messages: whole seconds, or tenths under ten seconds. */
export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/**
 * A call ended for its silence: retryable like a server error, since a hung stream or a wedged tool
 * seldom hangs again. `message` says what was silent and for how long; the last output is added.
 */
export function stalled(message: string, stall: StallReport): EngineFailure {
  const last = stall.lastOutput ? ` (last output: ${stall.lastOutput})` : " (no output at all)";
  return failure("stalled", `${message}${last}`, { retryable: true, stall });
}
