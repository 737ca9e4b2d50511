/**
 * `shell`: runs the step's `inputs.command` (a string, or a list run in order, stopping at the first
 * failure) with bash in the worktree. The exit code decides; stdout is the final message.
 */
import { execFileSync } from "node:child_process";
import { tail } from "../../shared/text.js";
import type { Engine, EngineEvent, EngineRequest, EngineResult, PreflightResult } from "../engine-port.js";
import { ENGINE_SPECIFICATION_VERSION } from "../engine-port.js";
import { failedResult, failure, seconds, stalled } from "../engine-result.js";
import { BinaryNotFoundError, findBinary, startProcess } from "../process/run-process.js";

const NO_TOKENS = { input: 0, cachedInput: 0, output: 0, reasoning: 0, estimated: false };

function script(command: unknown): string | undefined {
  if (typeof command === "string" && command.trim()) return command;
  if (Array.isArray(command) && command.length > 0 && command.every((c) => typeof c === "string")) {
    return ["set -e", ...command].join("\n");
  }
  return undefined;
}

export class ShellEngine implements Engine {
  readonly specificationVersion = ENGINE_SPECIFICATION_VERSION;
  readonly id = "shell";
  readonly kind = "builtin" as const;
  readonly capabilities = {
    resume: false,
    structuredOutput: false,
    sandboxModes: [],
    promptRequired: false,
    // the exit code is the command's verdict; many commands rightly print nothing
    emptyOutputAllowed: true,
  };

  async preflight(): Promise<PreflightResult> {
    const bash = findBinary("bash");
    if (!bash)
      return {
        ok: false,
        problems: [{ message: "bash not found on PATH", fix: "install bash (apt-get install bash)" }],
      };
    const version = execFileSync(bash, ["--version"], { encoding: "utf8" }).split("\n")[0];
    return { ok: true, binaryPath: bash, version, problems: [] };
  }

  async *run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void> {
    const source = script(request.inputs.command);
    if (!source)
      return failedResult(
        failure("crash", "shell step needs inputs.command (a string or a list of strings)"),
      );
    const proc = startProcess({
      command: "bash",
      args: ["-c", source],
      cwd: request.cwd,
      env: request.env,
      timeoutMs: request.timeoutMs,
      idleTimeoutMs: request.idleTimeoutMs,
      maxOutputBytes: request.maxOutputBytes,
      signal,
    });
    yield { type: "started", pid: proc.pid };
    let out: Awaited<typeof proc.result>;
    try {
      out = await proc.result;
    } catch (err) {
      if (err instanceof BinaryNotFoundError)
        return failedResult(failure("unavailable", err.message, { hint: "install bash" }));
      throw err;
    }
    if (out.stderr) yield { type: "stderr", text: out.stderr };
    const fields = {
      exitCode: out.exitCode,
      truncatedBytes: out.truncatedBytes,
      durationMs: out.durationMs,
      finalMessage: out.stdout.replace(/\n$/, ""),
    };
    if (out.stall)
      return failedResult(
        stalled(
          `command printed nothing for ${seconds(out.stall.idleMs)}; its process group was killed`,
          out.stall,
        ),
        { ...fields, usage: NO_TOKENS },
      );
    if (out.timedOut)
      return failedResult(
        failure(
          "timeout",
          `command timed out after ${Math.round(request.timeoutMs / 1000)} s; its process group was killed`,
        ),
        { ...fields, usage: NO_TOKENS },
      );
    if (out.aborted)
      return failedResult(failure("aborted", "command aborted"), { ...fields, usage: NO_TOKENS });
    if (out.exitCode !== 0) {
      const how = out.exitCode === null ? `was killed by ${out.signal}` : `exited with code ${out.exitCode}`;
      return failedResult(
        failure("crash", `command ${how}${out.stderr ? `: ${tail(out.stderr.trim())}` : ""}`),
        { ...fields, usage: NO_TOKENS },
      );
    }
    yield { type: "final", text: fields.finalMessage };
    return { ok: true, ...fields, usage: NO_TOKENS };
  }
}
