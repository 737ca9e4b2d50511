/** Small constructors for engine results, so every adapter reports failures the same way. */
import type { EngineFailure, EngineFailureKind, EngineResult } from "./engine-port.js";

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
