/**
 * Asking an agent for a JSON answer (a QA verdict, a plan): the engine's structured output where it
 * has it, tolerant extraction from prose, and one repair retry that shows the agent its own answer.
 * An engine failure or an answer that never parses is reported, never guessed.
 */

import type { Engine, EngineFailure, EngineRequest } from "../engines/engine-port.js";
import { tail } from "../shared/text.js";
import { callEngine, type EngineCall } from "./call-engine.js";

export interface JsonAttempt {
  prompt: string;
  call: EngineCall;
}

export type JsonAnswer<T> =
  | { ok: true; value: T; attempts: JsonAttempt[] }
  | { ok: false; reason: "engine_failed"; error: EngineFailure; attempts: JsonAttempt[] }
  | { ok: false; reason: "unparseable"; attempts: JsonAttempt[] };

export async function askForJson<T>(
  engine: Engine,
  request: EngineRequest,
  parse: (text: string) => T | null,
  repairPrefix: string,
  signal: AbortSignal,
  transcriptPath: (attempt: number) => string,
): Promise<JsonAnswer<T>> {
  const attempts: JsonAttempt[] = [];
  let prompt = request.prompt;
  for (let n = 1; n <= 2; n++) {
    const call = await callEngine(engine, { ...request, prompt }, signal, transcriptPath(n));
    attempts.push({ prompt, call });
    if (!call.result.ok) {
      const error = call.result.error ?? {
        kind: "crash",
        message: "engine reported failure without a reason",
        retryable: false,
      };
      return { ok: false, reason: "engine_failed", error, attempts };
    }
    const value = parse(call.result.finalMessage);
    if (value !== null) return { ok: true, value, attempts };
    prompt = repairPrefix + tail(call.result.finalMessage, 8_000);
  }
  return { ok: false, reason: "unparseable", attempts };
}
