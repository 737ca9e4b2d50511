/** A QA check command: bash in the worktree, pass on exit 0. Never throws; the reason goes in the output. */

import { runProcess } from "../engines/processes.js";
import { errorMessage } from "../shared/errors.js";

export interface CheckCommandResult {
  ok: boolean;
  exitCode: number | null;
  /** stdout then stderr. */
  output: string;
  timedOut: boolean;
  durationMs: number;
}

export async function runCheckCommand(
  command: string,
  cwd: string,
  timeoutMs: number,
  maxOutputBytes: number,
  env: Record<string, string>,
  signal?: AbortSignal,
): Promise<CheckCommandResult> {
  const started = Date.now();
  try {
    const r = await runProcess({
      command: "bash",
      args: ["-c", command],
      cwd,
      env,
      timeoutMs,
      maxOutputBytes,
      signal,
    });
    const output = [r.stdout, r.stderr].filter(Boolean).join("\n");
    return {
      ok: r.exitCode === 0 && !r.timedOut && !r.aborted,
      exitCode: r.exitCode,
      output: r.timedOut ? `timed out after ${timeoutMs} ms\n${output}` : output,
      timedOut: r.timedOut,
      durationMs: r.durationMs,
    };
  } catch (err) {
    return {
      ok: false,
      exitCode: null,
      output: errorMessage(err),
      timedOut: false,
      durationMs: Date.now() - started,
    };
  }
}
