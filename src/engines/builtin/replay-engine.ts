/**
 * `replay`: plays back a recorded, normalised event stream (JSONL, or JSON holding an array or
 * `{events: [...]}`) or a one-shot `inputs.final`. For demos, tests and offline re-runs of agent steps.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { head } from "../../shared/text.js";
import type { Engine, EngineEvent, EngineRequest, EngineResult, PreflightResult } from "../engine-port.js";
import { ENGINE_FAILURE_KINDS, ENGINE_SPECIFICATION_VERSION } from "../engine-port.js";
import { failedResult, failure, seconds, stalled } from "../engine-result.js";
import { UsageTally } from "../token-usage.js";

const Usage = z.object({
  input: z.number().int().nonnegative(),
  cachedInput: z.number().int().nonnegative().default(0),
  cacheWrite: z.number().int().nonnegative().optional(),
  output: z.number().int().nonnegative(),
  reasoning: z.number().int().nonnegative().default(0),
  estimated: z.boolean().default(false),
});

const RecordedEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("started"), pid: z.number().optional(), sessionId: z.string().optional() }),
  z.object({ type: z.literal("message"), text: z.string() }),
  z.object({ type: z.literal("tool"), name: z.string(), detail: z.string().optional() }),
  z.object({
    type: z.literal("tool_output"),
    name: z.string().optional(),
    text: z.string(),
    isError: z.boolean().optional(),
  }),
  z.object({ type: z.literal("usage"), usage: Usage, model: z.string().optional() }),
  z.object({
    type: z.literal("final"),
    text: z.string(),
    model: z.string().optional(),
    requestedModel: z.string().optional(),
  }),
  z.object({
    type: z.literal("error"),
    error: z.object({
      kind: z.enum(ENGINE_FAILURE_KINDS),
      message: z.string(),
      retryable: z.boolean().default(false),
      retryAfterMs: z.number().int().nonnegative().optional(),
    }),
  }),
]);

/** Any event may carry `delay_ms`: the pause before it is played (over `inputs.delay_ms`). */
const Pause = z.object({ delay_ms: z.number().int().nonnegative().optional() });

interface Recorded {
  event: EngineEvent;
  delayMs: number | undefined;
}

class RecordingError extends Error {}

function describe(err: unknown): string {
  if (err instanceof z.ZodError)
    return err.issues.map((i) => `${i.path.join(".") || "event"}: ${i.message}`).join("; ");
  return err instanceof Error ? err.message : String(err);
}

function parseLine(file: string, line: string, n: number): Recorded {
  try {
    const raw: unknown = JSON.parse(line);
    return { event: RecordedEvent.parse(raw) as EngineEvent, delayMs: Pause.parse(raw).delay_ms };
  } catch (err) {
    throw new RecordingError(`recording ${file} line ${n} is not a valid event: ${describe(err)}`);
  }
}

function loadRecording(file: string): Recorded[] {
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".json")) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new RecordingError(`recording ${file} is not valid JSON: ${describe(err)}`);
    }
    const list = Array.isArray(doc) ? doc : (doc as { events?: unknown }).events;
    if (!Array.isArray(list))
      throw new RecordingError(`recording ${file} must hold an array of events or {"events": [...]}`);
    return list.map((e, i) => parseLine(file, JSON.stringify(e), i + 1));
  }
  return text.split("\n").flatMap((line, i) => (line.trim() ? [parseLine(file, line, i + 1)] : []));
}

export class ReplayEngine implements Engine {
  readonly specificationVersion = ENGINE_SPECIFICATION_VERSION;
  readonly id = "replay";
  readonly kind = "builtin" as const;
  readonly capabilities = {
    resume: false,
    structuredOutput: true,
    sandboxModes: [],
    promptRequired: true,
    fileInputs: ["recording"],
  };

  async preflight(): Promise<PreflightResult> {
    return { ok: true, problems: [] };
  }

  async *run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void> {
    const started = Date.now();
    const done = (fields: Partial<EngineResult>) => ({ durationMs: Date.now() - started, ...fields });
    let recording: Recorded[];
    if (typeof request.inputs.final === "string") {
      recording = [{ event: { type: "final", text: request.inputs.final }, delayMs: undefined }];
    } else if (typeof request.inputs.recording === "string") {
      const file = resolve(request.cwd, request.inputs.recording);
      if (!existsSync(file))
        return failedResult(failure("unavailable", `recording ${file} does not exist`), done({}));
      try {
        recording = loadRecording(file);
      } catch (err) {
        if (!(err instanceof RecordingError)) throw err;
        return failedResult(failure("bad_output", err.message), done({}));
      }
    } else {
      return failedResult(
        failure("crash", "replay step needs inputs.recording (a file) or inputs.final (a string)"),
        done({}),
      );
    }

    const delayMs = Number(request.inputs.delay_ms ?? 0);
    const deadline = started + request.timeoutMs;
    const idleLimit = request.idleTimeoutMs ?? 0;
    /** When the last event was played, and what it was: the idle clock and its report. */
    let heardAt = started;
    let lastOutput: string | undefined;
    const tally = new UsageTally();
    let sessionId: string | undefined;
    let final: Extract<EngineEvent, { type: "final" }> | undefined;
    const messages: string[] = [];
    const played = () => ({
      usage: tally.usage,
      usageByModel: tally.usageByModel,
      model: final?.model ?? tally.model,
      requestedModel: final?.requestedModel,
      sessionId,
    });
    for (const { event, delayMs: pause } of recording) {
      if (signal.aborted) return failedResult(failure("aborted", "replay aborted"), done(played()));
      const wanted = pause ?? delayMs;
      if (wanted > 0) {
        // a pause past the idle limit stalls and one past the timeout times out, as with a real engine
        const stallAt = idleLimit > 0 ? heardAt + idleLimit : Number.POSITIVE_INFINITY;
        const limit = Math.min(stallAt, deadline);
        const wait = Math.min(Date.now() + wanted, limit) - Date.now();
        if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
        if (Date.now() >= limit && !signal.aborted) {
          const error =
            stallAt <= deadline
              ? stalled(`replay played no event for ${seconds(Date.now() - heardAt)}`, {
                  idleMs: Date.now() - heardAt,
                  lastOutput,
                })
              : failure("timeout", `replay timed out after ${Math.round(request.timeoutMs / 1000)} s`);
          return failedResult(error, done(played()));
        }
      }
      // a recorded pid names a process of another time: never pass it on as one of ours
      yield event.type === "started" ? { type: "started", sessionId: event.sessionId } : event;
      heardAt = Date.now();
      lastOutput = head(JSON.stringify(event));
      if (event.type === "usage") tally.add(event.usage, event.model);
      else if (event.type === "started") sessionId = event.sessionId ?? sessionId;
      else if (event.type === "message") messages.push(event.text);
      else if (event.type === "final") final = event;
      else if (event.type === "error") return failedResult(event.error, done(played()));
    }
    return {
      ok: true,
      finalMessage: final?.text ?? messages.join("\n"),
      ...played(),
      exitCode: 0,
      truncatedBytes: 0,
      ...done({}),
    };
  }
}
