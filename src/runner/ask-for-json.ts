/**
 * Asking an agent for a JSON answer (a QA verdict, a plan): the engine's structured output where it
 * has it, tolerant extraction from prose, and one repair retry that tells the agent what was wrong
 * (every error with its JSON pointer, and the schema) — in the same session where the engine can
 * resume one, else with the original prompt again. Retryable engine failures (rate limits, server
 * errors) are called again after the hinted delay. An answer that never validates is reported with
 * its errors, never guessed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { Engine, EngineFailure, EngineRequest } from "../engines/engine-port.js";
import { extractJson } from "../shared/extract-json.js";
import { tail } from "../shared/text.js";
import { issueToErrors, type SpecError } from "../spec/validate-spec.js";
import { callEngine, type EngineCall, type TranscriptTarget } from "./call-engine.js";

/** The longest wait between engine retries, whatever the engine hints. */
export const MAX_RETRY_DELAY_MS = 60_000;

/** The wait before retry `n` (1-based) of a retryable failure: the engine's hint, else exponential. */
export function retryDelayMs(error: EngineFailure, n: number): number {
  return Math.min(error.retryAfterMs ?? 1000 * 2 ** (n - 1), MAX_RETRY_DELAY_MS);
}

export interface JsonAttempt {
  prompt: string;
  call: EngineCall;
  /** Set when this call failed retryably and was made again after `delayMs`. */
  retry?: { delayMs: number; error: EngineFailure };
  /** Set when this answer was not valid and a repair was asked for: what was wrong with it. */
  invalid?: SpecError[];
}

export type JsonAnswer<T> =
  | { ok: true; value: T; attempts: JsonAttempt[] }
  | { ok: false; reason: "engine_failed"; error: EngineFailure; attempts: JsonAttempt[] }
  | { ok: false; reason: "invalid"; errors: SpecError[]; attempts: JsonAttempt[] };

export interface JsonQuestion<T> {
  engine: Engine;
  /** The first call; its `outputSchema` is also shown in the repair prompt. */
  request: EngineRequest;
  /** Validates the answer (structure and meaning); its issues become the errors. */
  schema: z.ZodType<T>;
  /** What the answer is, in the repair prompt ("QA verdict", "plan"). */
  answerName: string;
  signal: AbortSignal;
  /** Transcript file of the n-th call (1-based, retries and repairs included). */
  transcriptPath: (call: number) => TranscriptTarget;
  /** Extra calls allowed after each retryable engine failure. */
  retries: number;
}

/** The answer in `text` if one validates, else the errors of the first JSON object in it. */
export function readAnswer<T>(
  text: string,
  schema: z.ZodType<T>,
): { ok: true; value: T } | { ok: false; errors: SpecError[] } {
  const value = extractJson(text, schema);
  if (value !== null) return { ok: true, value };
  const candidate = extractJson(text, z.record(z.string(), z.unknown()));
  if (candidate === null) return { ok: false, errors: [{ pointer: "", message: "no JSON object found" }] };
  const parsed = schema.safeParse(candidate, { reportInput: true });
  return { ok: false, errors: parsed.success ? [] : parsed.error.issues.flatMap(issueToErrors) };
}

function repairPrompt(q: JsonQuestion<unknown>, errors: SpecError[], previous: string): string {
  return [
    `Your previous answer could not be used as the ${q.answerName}:`,
    ...errors.map((e) => `- ${e.pointer || "/"}: ${e.message}`),
    "",
    q.request.outputSchema
      ? `Reply again with ONLY one JSON object that follows this JSON Schema:\n${JSON.stringify(q.request.outputSchema)}`
      : "Reply again with ONLY one JSON object.",
    "",
    "Your previous answer was:",
    tail(previous, 8_000),
  ].join("\n");
}

/** Engines without structured output see the schema in the prompt itself. */
function withSchema(q: JsonQuestion<unknown>): EngineRequest {
  const { request } = q;
  if (q.engine.capabilities.structuredOutput || !request.outputSchema) return request;
  return {
    ...request,
    prompt: `${request.prompt}\n\nAnswer with ONLY one JSON object that follows this JSON Schema:\n${JSON.stringify(request.outputSchema)}`,
  };
}

export async function askForJson<T>(q: JsonQuestion<T>): Promise<JsonAnswer<T>> {
  const attempts: JsonAttempt[] = [];
  const first = withSchema(q as JsonQuestion<unknown>);
  let request = first;
  for (let ask = 1; ; ask++) {
    let call: EngineCall;
    for (let retry = 1; ; retry++) {
      call = await callEngine(q.engine, request, q.signal, q.transcriptPath(attempts.length + 1));
      const error = call.result.error;
      attempts.push({ prompt: request.prompt, call });
      if (call.result.ok || !error?.retryable || retry > q.retries || q.signal.aborted) break;
      const delayMs = retryDelayMs(error, retry);
      attempts[attempts.length - 1]!.retry = { delayMs, error };
      await sleep(delayMs, undefined, { signal: q.signal }).catch(() => undefined);
    }
    if (!call.result.ok) {
      const error = call.result.error ?? {
        kind: "crash",
        message: "engine reported failure without a reason",
        retryable: false,
      };
      return { ok: false, reason: "engine_failed", error, attempts };
    }
    const answer = readAnswer(call.result.finalMessage, q.schema);
    if (answer.ok) return { ok: true, value: answer.value, attempts };
    attempts[attempts.length - 1]!.invalid = answer.errors;
    if (ask === 2) return { ok: false, reason: "invalid", errors: answer.errors, attempts };
    const repair = repairPrompt(q as JsonQuestion<unknown>, answer.errors, call.result.finalMessage);
    const session = q.engine.capabilities.resume ? call.result.sessionId : undefined;
    request = session
      ? { ...q.request, prompt: repair, resumeSessionId: session }
      : { ...first, prompt: `${first.prompt}\n\n---\n\n${repair}` };
  }
}
