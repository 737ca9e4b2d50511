/**
 * What an engine did in a step (or in planning), from the transcripts the runner writes for every
 * call (`<protocol folder>/logs/<step>.<phase>.<attempt>[.<n>].jsonl`, `plan.<n>.jsonl`): the
 * agent's messages, its tool calls with their arguments, tool output, stderr, usage, the final
 * message and errors, call by call in attempt and phase order (exec, then QA). Files are read only
 * inside the protocol folder: a symlink, or a logs folder that resolves elsewhere, is not followed.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { InvalidInputError } from "../shared/errors.js";
import { fileSafeName } from "../shared/file-names.js";
import { isInside } from "../shared/paths.js";
import { TRANSCRIPTS_DIR } from "../shared/protocol-files.js";
import type { Json, ProtocolRun, StepRun } from "../store/types.js";

/** A transcript is read up to this size; the rest is left out and the call says so. */
const MAX_TRANSCRIPT_BYTES = 4 * 1024 * 1024;

export type TranscriptEntry =
  | { kind: "started"; sessionId: string | null; pid: number | null }
  | { kind: "message"; text: string }
  | { kind: "tool"; name: string; detail: string }
  | { kind: "tool_output"; name: string | null; text: string; isError: boolean }
  | { kind: "stderr"; text: string }
  | {
      kind: "usage";
      input: number;
      output: number;
      cachedInput: number;
      estimated: boolean;
      model: string | null;
    }
  | { kind: "final"; text: string }
  | { kind: "error"; errorKind: string; message: string }
  | {
      kind: "result";
      ok: boolean;
      exitCode: number | null;
      durationMs: number | null;
      error: string | null;
      truncatedBytes: number;
    }
  /** A line that is not a transcript event (kept, so nothing is hidden). */
  | { kind: "other"; text: string };

export interface TranscriptCall {
  /** The file's name in the logs folder. */
  file: string;
  phase: "exec" | "qa" | "plan";
  /** The step's attempt (planning: the planning attempt). */
  attempt: number;
  /** The call within its phase: 2 and up are engine retries or QA's repair retry. */
  call: number;
  /** QA run again by hand (`run_qa`) on an earlier attempt's outputs. */
  rerun: boolean;
  entries: TranscriptEntry[];
  /** Bytes left unread past MAX_TRANSCRIPT_BYTES. */
  truncatedBytes: number;
}

export interface Transcript {
  calls: TranscriptCall[];
  /** Why there is nothing to show, when there is nothing (no protocol folder, no call yet). */
  note: string | null;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function entryOf(line: string): TranscriptEntry {
  let e: Json;
  try {
    e = JSON.parse(line) as Json;
  } catch {
    return { kind: "other", text: line };
  }
  if (typeof e !== "object" || e === null) return { kind: "other", text: line };
  switch (e.type) {
    case "started":
      return { kind: "started", sessionId: str(e.sessionId), pid: typeof e.pid === "number" ? e.pid : null };
    case "message":
      return { kind: "message", text: str(e.text) ?? "" };
    case "tool":
      return { kind: "tool", name: str(e.name) ?? "tool", detail: str(e.detail) ?? "" };
    case "tool_output":
      return { kind: "tool_output", name: str(e.name), text: str(e.text) ?? "", isError: e.isError === true };
    case "stderr":
      return { kind: "stderr", text: str(e.text) ?? "" };
    case "usage": {
      const u = (e.usage ?? {}) as Json;
      return {
        kind: "usage",
        input: num(u.input),
        output: num(u.output),
        cachedInput: num(u.cachedInput),
        estimated: u.estimated === true,
        model: str(e.model),
      };
    }
    case "final":
      return { kind: "final", text: str(e.text) ?? "" };
    case "error": {
      const err = (e.error ?? {}) as Json;
      return { kind: "error", errorKind: str(err.kind) ?? "error", message: str(err.message) ?? "" };
    }
    case "result": {
      const err = e.error as Json | undefined;
      return {
        kind: "result",
        ok: e.ok === true,
        exitCode: typeof e.exitCode === "number" ? e.exitCode : null,
        durationMs: typeof e.durationMs === "number" ? e.durationMs : null,
        error: err ? `${str(err.kind) ?? "error"}: ${str(err.message) ?? ""}` : null,
        truncatedBytes: num(e.truncatedBytes),
      };
    }
    default:
      return { kind: "other", text: line };
  }
}

/** Reads a regular file without following a symlink, up to the cap. */
function readCapped(path: string): { text: string; truncatedBytes: number } | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, MAX_TRANSCRIPT_BYTES);
    const buf = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(fd, buf, read, length - read, read);
      if (n === 0) break;
      read += n;
    }
    return { text: buf.subarray(0, read).toString("utf8"), truncatedBytes: size - read };
  } finally {
    closeSync(fd);
  }
}

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Which transcripts belong to the step (or to planning), parsed from their names. */
function nameMatcher(step: StepRun | null) {
  const re = step
    ? new RegExp(
        `^${literal(fileSafeName(step.stepName))}\\.(exec|qa)(-again-\\d+)?\\.(\\d+)(?:\\.(\\d+))?\\.jsonl$`,
      )
    : /^plan\.(\d+)\.jsonl$/;
  return (file: string): Omit<TranscriptCall, "entries" | "truncatedBytes"> | null => {
    const m = re.exec(file);
    if (!m) return null;
    if (!step) return { file, phase: "plan", attempt: Number(m[1]), call: 1, rerun: false };
    return {
      file,
      phase: m[1] as "exec" | "qa",
      attempt: Number(m[3]),
      call: m[4] ? Number(m[4]) : 1,
      rerun: m[2] !== undefined,
    };
  };
}

const PHASE_ORDER = { exec: 0, qa: 1, plan: 2 } as const;

/**
 * The transcripts of `step` (or, with null, the run's planning calls), in attempt, phase and call
 * order. A run without a protocol folder, or a step that has not run, has none (with a note).
 */
export function readTranscript(run: ProtocolRun, step: StepRun | null): Transcript {
  if (step && step.protocolRunId !== run.id)
    throw new InvalidInputError(`step ${step.id} is not a step of run ${run.id}`);
  if (!run.protocolRoot) return { calls: [], note: `run ${run.id} has no protocol folder` };
  const logs = join(run.protocolRoot, TRANSCRIPTS_DIR);
  if (!isInside(run.protocolRoot, logs))
    return { calls: [], note: `the logs folder of run ${run.id} resolves outside its protocol folder` };
  let files: string[];
  try {
    files = readdirSync(logs, { withFileTypes: true })
      .filter((d) => d.isFile())
      .map((d) => d.name);
  } catch {
    return { calls: [], note: `no transcripts yet (${logs} does not exist)` };
  }
  const match = nameMatcher(step);
  const calls = files
    .map(match)
    .filter((c): c is NonNullable<typeof c> => c !== null)
    .sort(
      (a, b) =>
        a.attempt - b.attempt ||
        Number(a.rerun) - Number(b.rerun) ||
        PHASE_ORDER[a.phase] - PHASE_ORDER[b.phase] ||
        a.file.localeCompare(b.file, "en", { numeric: true }),
    )
    .flatMap((c) => {
      const read = readCapped(join(logs, c.file));
      if (!read) return [];
      const entries = read.text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map(entryOf);
      return [{ ...c, entries, truncatedBytes: read.truncatedBytes }];
    });
  return {
    calls,
    note:
      calls.length === 0
        ? step
          ? `step ${step.stepName} has no transcript yet`
          : "no planning transcript"
        : null,
  };
}
