/**
 * One engine call, the same for exec, QA and planning: drives the engine's event stream, keeps a
 * transcript for evidence, and turns an unexpected throw into a typed failure so callers have one path.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Engine, EngineEvent, EngineRequest, EngineResult } from "../engines/engine-port.js";
import { errorMessage } from "../shared/errors.js";
import { writeFileInside } from "../shared/safe-write.js";

/** Where the transcript goes; with `roots`, a folder an agent redirected elsewhere is refused. */
export type TranscriptTarget = string | { path: string; roots: string[] };

export interface EngineCall {
  result: EngineResult;
  events: EngineEvent[];
  /** Why the transcript could not be written, when it could not. */
  transcriptError?: string;
}

/** Extra time an engine gets past its own timeout before the runner aborts it from outside. */
const ABORT_GRACE_MS = 5_000;

export async function callEngine(
  engine: Engine,
  request: EngineRequest,
  signal: AbortSignal,
  transcript?: TranscriptTarget,
  /** Sees each event as it arrives (the runner records the engine's process from `started`). */
  onEvent?: (event: EngineEvent) => Promise<void>,
): Promise<EngineCall> {
  const events: EngineEvent[] = [];
  const started = Date.now();
  const guard = new AbortController();
  const onAbort = () => guard.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => guard.abort(new Error("timeout")), request.timeoutMs + ABORT_GRACE_MS);
  let result: EngineResult;
  try {
    const stream = engine.run(request, guard.signal);
    for (;;) {
      const next = await stream.next();
      if (next.done) {
        result = next.value;
        break;
      }
      events.push(next.value);
      await onEvent?.(next.value);
    }
  } catch (err) {
    result = {
      ok: false,
      finalMessage: "",
      exitCode: null,
      truncatedBytes: 0,
      durationMs: Date.now() - started,
      error: { kind: "crash", message: `engine ${engine.id} threw: ${errorMessage(err)}`, retryable: false },
    };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
  if (transcript) {
    const text = `${[...events, { type: "result", ...result }].map((e) => JSON.stringify(e)).join("\n")}\n`;
    if (typeof transcript === "string") {
      mkdirSync(dirname(transcript), { recursive: true });
      writeFileSync(transcript, text);
    } else {
      // the transcript is evidence, not the step's result: a refused write loses only the file
      try {
        writeFileInside(transcript.roots, transcript.path, text);
      } catch (err) {
        return { result, events, transcriptError: errorMessage(err) };
      }
    }
  }
  return { result, events };
}
