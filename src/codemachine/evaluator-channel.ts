/**
 * The importer's side of the package evaluator process (sandbox-programs.ts): its messages on stdout,
 * read defensively — a line that is no message, a message about another file, or more output than any
 * package exports is an error naming the file being evaluated, never an exception of the importer — and
 * the limits on its time and memory.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { isRecord } from "./field-checks.js";
import { CodeMachineImportError } from "./import-errors.js";

export const TIME_LIMIT_MS = 2_000;
/** The evaluator's JavaScript heap. */
export const HEAP_LIMIT_MB = 256;
/** All the evaluator's memory (heap, ArrayBuffers, code): its data segment limit. */
export const MEMORY_LIMIT_MB = 512;
/** Output read from the evaluator in all; exports are small data. */
const OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
/** Starting a Node process is not counted against a file, but it may not take for ever either. */
const STARTUP_LIMIT_MS = 20_000;
/** Slack over a file's own limit before the process is killed (its in-process limit fires first). */
const KILL_GRACE_MS = 1_000;

type EvaluatorMessage =
  | { start: string }
  | { file: string; json: string }
  | { file: string; error: string }
  | { file: string; timeout: true };

const overrun = (file: string) =>
  new CodeMachineImportError(
    file,
    `did not finish within ${TIME_LIMIT_MS / 1000} s (an endless loop, or a promise chain that never ends?)`,
  );

const shown = (line: string) => JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);

/** The message on one line of the evaluator's output, checked to be about `file`. */
function parseMessage(line: string, file: string): EvaluatorMessage {
  const bad = (why: string) => new CodeMachineImportError(file, `the package evaluator ${why}`);
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw bad(`wrote a line that is not a message: ${shown(line)}`);
  }
  const about = isRecord(msg) ? (msg.start ?? msg.file) : undefined;
  const wellFormed =
    isRecord(msg) &&
    (typeof msg.start === "string" ||
      (typeof msg.file === "string" &&
        (typeof msg.json === "string" || typeof msg.error === "string" || msg.timeout === true)));
  if (!wellFormed) throw bad(`wrote a message of the wrong shape: ${shown(line)}`);
  if (about !== file) throw bad(`wrote a message about another file: ${shown(line)}`);
  return msg as EvaluatorMessage;
}

/** The `value` of a file's exports as the evaluator sent them (JSON of `{value}`). */
function exportedValue(json: string, file: string): unknown {
  try {
    return (JSON.parse(json) as { value?: unknown }).value;
  } catch {
    throw new CodeMachineImportError(
      file,
      `the package evaluator sent exports that are not JSON: ${shown(json)}`,
    );
  }
}

/**
 * The value each of `files` exports, from the evaluator `child` that evaluates them in this order.
 * Rejects with a CodeMachineImportError naming the first file that throws, overruns, cannot be read,
 * or whose evaluation produces output that is not the evaluator's.
 */
export function readEvaluatorOutput(
  child: ChildProcessWithoutNullStreams,
  files: string[],
): Promise<Map<string, unknown>> {
  const values = new Map<string, unknown>();
  return new Promise((resolvePromise, reject) => {
    const current = () => files[values.size] ?? files.at(-1)!;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let stderr = "";
    let partial: string[] = [];
    let received = 0;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      if (err) reject(err);
      else resolvePromise(values);
    };
    const arm = (ms: number, err: () => Error) => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(err()), ms);
    };
    arm(STARTUP_LIMIT_MS, () => new CodeMachineImportError(current(), "the package evaluator did not start"));

    const onMessage = (msg: EvaluatorMessage) => {
      if ("start" in msg) {
        arm(TIME_LIMIT_MS + KILL_GRACE_MS, () => overrun(msg.start));
        return;
      }
      clearTimeout(timer);
      if ("timeout" in msg) return finish(overrun(msg.file));
      if ("error" in msg) return finish(new CodeMachineImportError(msg.file, msg.error));
      values.set(msg.file, exportedValue(msg.json, msg.file));
      if (values.size === files.length) finish();
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      if (settled) return;
      received += Buffer.byteLength(chunk);
      if (received > OUTPUT_LIMIT_BYTES)
        return finish(
          new CodeMachineImportError(
            current(),
            `the package evaluator sent more than ${OUTPUT_LIMIT_BYTES / 1024 / 1024} MB (exports that large are not supported)`,
          ),
        );
      try {
        // only the new chunk is searched for line ends: a long line is scanned once
        let start = 0;
        for (let nl = chunk.indexOf("\n"); nl >= 0 && !settled; nl = chunk.indexOf("\n", start)) {
          const line = partial.join("") + chunk.slice(start, nl);
          partial = [];
          start = nl + 1;
          onMessage(parseMessage(line, current()));
        }
        if (start < chunk.length) partial.push(chunk.slice(start));
      } catch (err) {
        finish(err as Error);
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on("error", (err) =>
      finish(new CodeMachineImportError(current(), `cannot start the package evaluator: ${err.message}`)),
    );
    child.on("close", (code, signal) => {
      if (settled) return;
      const why = /heap out of memory/i.test(stderr)
        ? `used more than ${HEAP_LIMIT_MB} MB of memory`
        : `stopped the evaluator (${signal ?? `exit code ${code}`})${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`;
      finish(new CodeMachineImportError(current(), why));
    });
  });
}
