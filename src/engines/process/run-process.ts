/**
 * Runs one external process the way every engine needs it: its own process group (so a timeout, a
 * stall or an abort kills grandchildren too, also those that moved to groups of their own), stdin closed unless text is given (some CLIs wait on an open stdin),
 * the start and end of the output kept within a cap with the overflow counted, and every stdout line
 * streamed as it arrives.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { InvalidInputError, TasksGodzillaError } from "../../shared/errors.js";
import { head } from "../../shared/text.js";
import type { StallReport } from "../engine-port.js";
import { descendants, type ProcessStat, signalTree } from "./process-tree.js";

export class BinaryNotFoundError extends TasksGodzillaError {
  readonly code = "binary_not_found";
  constructor(readonly binary: string) {
    super(`executable "${binary}" not found (not on PATH or not executable)`);
  }
}

export interface ProcessOptions {
  command: string;
  args: string[];
  cwd: string;
  /** Merged over process.env. */
  env?: Record<string, string> | undefined;
  /** Written to stdin, which is then closed; when undefined stdin is closed at once. */
  stdin?: string | undefined;
  timeoutMs: number;
  /** Kills the group after this long without output (see `activity`); undefined or 0: never. */
  idleTimeoutMs?: number | undefined;
  /**
   * What counts as output for `idleTimeoutMs`: any byte on stdout or stderr (`any`, the default), or
   * only a complete stdout line (`stdout-lines`: an agent CLI's events; its stderr warnings and retry
   * notices are no sign of progress).
   */
  activity?: "any" | "stdout-lines" | undefined;
  /**
   * Cap on stdout + stderr kept in memory (the start and the end of each, half the cap per stream);
   * the middle is dropped and counted in truncatedBytes. Stdout lines still reach `lines()` in full.
   */
  maxOutputBytes: number;
  /**
   * The longest stdout line passed to `lines()`; a longer one is dropped whole and counted in
   * `droppedLines`. Default: the larger of `maxOutputBytes` and MAX_LINE_BYTES.
   */
  maxLineBytes?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Time between SIGTERM and SIGKILL; default 2000 ms. */
  killGraceMs?: number | undefined;
}

export interface ProcessOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the process was killed after `idleTimeoutMs` without output. */
  stall?: StallReport | undefined;
  aborted: boolean;
  truncatedBytes: number;
  /** Stdout lines longer than `maxLineBytes`, dropped whole instead of reaching `lines()`. */
  droppedLines: number;
  durationMs: number;
  pid: number | undefined;
}

export interface RunningProcess {
  pid: number | undefined;
  /** Stdout split into lines as they arrive; ends when the process's stdout closes. */
  lines(): AsyncIterable<string>;
  result: Promise<ProcessOutcome>;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A single line is held whole until it ends, whatever the output cap: a CLI's events (Claude Code's
 * first one lists every tool) must be parsed even under a small cap. This bounds what one line may take.
 */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

export function findBinary(name: string, pathEnv: string | undefined = process.env.PATH): string | undefined {
  if (name.includes("/")) {
    const full = isAbsolute(name) ? name : resolve(name);
    return isExecutable(full) ? full : undefined;
  }
  for (const dir of (pathEnv ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is already gone
  }
}

/**
 * Keeps the first and the last part of one output stream within a byte budget and counts what it
 * dropped: a CLI's first lines say what started, its last ones how it ended.
 */
class HeadTail {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  dropped = 0;
  constructor(private readonly half: number) {}

  take(chunk: Buffer): void {
    const room = Math.max(0, this.half - this.headBytes);
    if (room > 0) {
      const kept = chunk.subarray(0, room);
      this.head.push(kept);
      this.headBytes += kept.length;
      chunk = chunk.subarray(kept.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes > this.half) {
      const first = this.tail[0]!;
      const over = this.tailBytes - this.half;
      if (first.length <= over) {
        this.tail.shift();
        this.tailBytes -= first.length;
        this.dropped += first.length;
      } else {
        this.tail[0] = first.subarray(over);
        this.tailBytes -= over;
        this.dropped += over;
      }
    }
  }

  text(): string {
    const head = Buffer.concat(this.head).toString("utf8");
    const tail = Buffer.concat(this.tail).toString("utf8");
    return this.dropped > 0 ? `${head}\n[… ${this.dropped} bytes dropped …]\n${tail}` : head + tail;
  }
}

/**
 * A push-based async line queue: the process writes lines, one consumer reads them. A line longer
 * than `maxLine` is dropped whole (and counted) rather than held in memory without end: cut to the
 * cap, a JSON event could not be parsed anyway.
 */
class LineQueue {
  private readonly buffered: string[] = [];
  private waiting: ((r: IteratorResult<string>) => void) | undefined;
  private ended = false;
  private partial = "";
  private skipping = false;
  dropped = 0;
  /** `completed` sees every line as it ends (one dropped for its length as ""). */
  constructor(
    private readonly maxLine: number,
    private readonly completed?: (line: string) => void,
  ) {}

  push(text: string): void {
    let rest = text;
    if (this.skipping) {
      // the rest of a line already counted: nothing of it is kept, up to its end
      const end = rest.indexOf("\n");
      if (end < 0) return;
      rest = rest.slice(end + 1);
      this.skipping = false;
      this.completed?.("");
    }
    // only the new chunk is searched for line ends: a long line is not scanned again per chunk
    if (!rest.includes("\n")) {
      this.partial += rest;
    } else {
      const parts = rest.split("\n");
      parts[0] = this.partial + parts[0];
      this.partial = parts.pop() ?? "";
      for (const line of parts) {
        const kept = line.length <= this.maxLine;
        this.completed?.(kept ? line : "");
        if (kept) this.emit(line);
        else this.dropped++;
      }
    }
    if (this.partial.length > this.maxLine) {
      this.partial = "";
      this.skipping = true;
      this.dropped++;
    }
  }

  end(): void {
    if (this.partial && !this.skipping) this.emit(this.partial);
    this.partial = "";
    this.ended = true;
    this.waiting?.({ done: true, value: undefined });
    this.waiting = undefined;
  }

  private emit(line: string): void {
    if (this.waiting) {
      this.waiting({ done: false, value: line });
      this.waiting = undefined;
    } else {
      this.buffered.push(line);
    }
  }

  async *iterate(): AsyncGenerator<string> {
    for (;;) {
      const next = this.buffered.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.ended) return;
      const r = await new Promise<IteratorResult<string>>((res) => {
        this.waiting = res;
      });
      if (r.done) return;
      yield r.value;
    }
  }
}

/** The most of the last output line a stall report keeps. */
const LAST_OUTPUT_CHARS = 500;

/**
 * When the process last gave output, and the last line of it: what decides a stall and what the
 * stall report shows. Output arrives as chunks; the last non-empty line is kept, cut short.
 */
class Silence {
  private last = Date.now();
  private recent = "";
  private lastLine: string | undefined;

  /** A chunk of output arrived (`any`): lines may span chunks, so the last few are kept together. */
  heard(text: string): void {
    this.last = Date.now();
    this.recent = (this.recent + text).slice(-4 * LAST_OUTPUT_CHARS);
    const line = this.recent
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1);
    if (line) this.lastLine = head(line, LAST_OUTPUT_CHARS);
  }

  /** A whole stdout line arrived (`stdout-lines`): its start says what event it is. */
  heardLine(line: string): void {
    this.last = Date.now();
    if (line.trim()) this.lastLine = head(line.trim(), LAST_OUTPUT_CHARS);
  }

  quietFor(): number {
    return Date.now() - this.last;
  }

  report(): StallReport {
    return { idleMs: this.quietFor(), lastOutput: this.lastLine };
  }
}

export function startProcess(opts: ProcessOptions): RunningProcess {
  const started = Date.now();
  const child = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    // some CLIs take their project folder from PWD rather than the real working directory
    env: { ...process.env, PWD: opts.cwd, ...opts.env },
    detached: true,
    stdio: [opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  });
  const stdout = new HeadTail(Math.floor(opts.maxOutputBytes / 4));
  const stderr = new HeadTail(Math.floor(opts.maxOutputBytes / 4));
  const silence = new Silence();
  const byLine = opts.activity === "stdout-lines";
  const lines = new LineQueue(
    opts.maxLineBytes ?? Math.max(opts.maxOutputBytes, MAX_LINE_BYTES),
    byLine ? (line) => silence.heardLine(line) : undefined,
  );
  let timedOut = false;
  let stall: StallReport | undefined;
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  /** What ran below the process when it was told to stop, its own group or not. */
  let tree: ProcessStat[] = [];

  /** `look`: read what runs below the process first; never once it has ended (its pid may be reused). */
  const signalAll = (signal: NodeJS.Signals, look = true) => {
    // read before the signal: once the CLI is dead, its tool commands belong to init and cannot be found
    if (look && child.pid !== undefined) {
      const known = new Set(tree.map((p) => p.pid));
      tree = [...tree, ...descendants(child.pid).filter((p) => !known.has(p.pid))];
    }
    killGroup(child, signal);
    signalTree(tree, signal);
  };
  const terminate = () => {
    signalAll("SIGTERM");
    killTimer ??= setTimeout(() => signalAll("SIGKILL"), opts.killGraceMs ?? 2000);
  };
  // whichever limit passes first is the one reported
  const timer = setTimeout(() => {
    if (stall) return;
    timedOut = true;
    terminate();
  }, opts.timeoutMs);
  const idleLimit = opts.idleTimeoutMs ?? 0;
  let idleTimer: NodeJS.Timeout | undefined;
  // one timer, set again for what is left of the limit since the last output: output costs no timer work
  const watchSilence = (wait: number) => {
    idleTimer = setTimeout(() => {
      const quiet = silence.quietFor();
      if (quiet < idleLimit) return watchSilence(idleLimit - quiet);
      if (timedOut || aborted) return;
      stall = silence.report();
      terminate();
    }, wait);
  };
  if (idleLimit > 0) watchSilence(idleLimit);
  const onAbort = () => {
    aborted = true;
    terminate();
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  const decoder = new StringDecoder("utf8");
  const errDecoder = new StringDecoder("utf8");
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout.take(chunk);
    const text = decoder.write(chunk);
    if (!byLine) silence.heard(text);
    // the parser sees every line, so events printed last (results, usage) survive the cap
    lines.push(text);
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr.take(chunk);
    if (!byLine) silence.heard(errDecoder.write(chunk));
  });
  if (child.stdin) {
    child.stdin.on("error", () => undefined); // the child may exit before reading its input
    child.stdin.end(opts.stdin);
  }

  const result = new Promise<ProcessOutcome>((resolvePromise, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      clearTimeout(idleTimer);
      opts.signal?.removeEventListener("abort", onAbort);
      lines.push(decoder.end());
      lines.end();
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      cleanup();
      clearTimeout(killTimer);
      // spawn says ENOENT for a missing working directory too; only blame the binary when the directory exists
      if (err.code === "ENOENT" && !existsSync(opts.cwd))
        reject(new InvalidInputError(`working directory ${opts.cwd} does not exist`));
      else reject(err.code === "ENOENT" ? new BinaryNotFoundError(opts.command) : err);
    });
    child.once("close", (exitCode, signal) => {
      cleanup();
      clearTimeout(killTimer);
      // whatever the leader left behind (backgrounded children, tool commands) goes with it on a kill
      if (timedOut || stall || aborted) signalAll("SIGKILL", false);
      resolvePromise({
        exitCode,
        signal,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timedOut,
        stall,
        aborted,
        truncatedBytes: stdout.dropped + stderr.dropped,
        droppedLines: lines.dropped,
        durationMs: Date.now() - started,
        pid: child.pid,
      });
    });
  });
  return { pid: child.pid, lines: () => lines.iterate(), result };
}

export function runProcess(opts: ProcessOptions): Promise<ProcessOutcome> {
  return startProcess(opts).result;
}
