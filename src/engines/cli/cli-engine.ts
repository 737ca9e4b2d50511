/**
 * One Engine for every agent CLI: finds the binary, prepares the isolated config home, runs the CLI
 * with the prompt on stdin in the step's worktree, turns its JSON lines into normalised events, and
 * maps exit codes, timeouts and reported errors to typed failures. Adapters supply only the differences.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { tail } from "../../shared/text.js";
import {
  ENGINE_SPECIFICATION_VERSION,
  type Engine,
  type EngineEvent,
  type EngineRequest,
  type EngineResult,
  type EngineSettings,
  type PreflightResult,
} from "../engine-port.js";
import { failedResult, failure } from "../engine-result.js";
import {
  BinaryNotFoundError,
  findBinary,
  type ProcessOutcome,
  runProcess,
  startProcess,
} from "../process/run-process.js";
import { classifyFailure } from "./classify-failure.js";
import type { CallContext, CliAdapter } from "./cli-adapter.js";

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

export class CliEngine implements Engine {
  readonly specificationVersion = ENGINE_SPECIFICATION_VERSION;
  readonly kind = "cli" as const;

  constructor(private readonly adapter: CliAdapter) {}

  get id(): string {
    return this.adapter.id;
  }

  get capabilities() {
    return this.adapter.capabilities;
  }

  private binaryName(settings: EngineSettings): string {
    return settings.binary ?? this.adapter.binary;
  }

  /** The isolated home (created and seeded once), or undefined for the user's own. */
  private home(settings: EngineSettings): string | undefined {
    if (settings.home === "user") return undefined;
    const home = settings.homeDir ?? join(tmpdir(), `tasksgodzilla-${this.id}-home`);
    if (!existsSync(home)) {
      mkdirSync(home, { recursive: true });
      if (settings.seedFromUser) {
        for (const f of this.adapter.seedFiles) {
          const from = join(homedir(), f.from);
          if (!existsSync(from)) continue;
          mkdirSync(dirname(join(home, f.to)), { recursive: true });
          copyFileSync(from, join(home, f.to));
        }
      }
    }
    return home;
  }

  private stateDir(settings: EngineSettings): string {
    const dir = join(settings.homeDir ?? join(tmpdir(), `tasksgodzilla-${this.id}-home`), ".tasksgodzilla");
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  async preflight(settings: EngineSettings = {}): Promise<PreflightResult> {
    const name = this.binaryName(settings);
    const binaryPath = findBinary(name);
    if (!binaryPath) {
      return {
        ok: false,
        problems: [{ message: `${this.id}: binary "${name}" not found`, fix: this.installHint() }],
      };
    }
    const problems: PreflightResult["problems"] = [];
    let version: string | undefined;
    try {
      const out = await runProcess({
        command: binaryPath,
        args: ["--version"],
        cwd: tmpdir(),
        timeoutMs: 20_000,
        maxOutputBytes: 64_000,
      });
      version = /\d+\.\d+\.\d+/.exec(`${out.stdout}\n${out.stderr}`)?.[0];
    } catch {
      // reported below as an unknown version
    }
    if (!version)
      problems.push({
        message: `${this.id}: could not read the version of ${binaryPath}`,
        fix: `run \`${binaryPath} --version\` by hand`,
      });
    else if (!versionAtLeast(version, this.adapter.minVersion)) {
      problems.push({
        message: `${this.id}: version ${version} is older than ${this.adapter.minVersion}`,
        fix: this.installHint(),
      });
    }
    const home = this.home(settings);
    const env = { ...process.env, ...settings.env };
    problems.push(...this.adapter.credentials(env, { settings, home, stateDir: this.stateDir(settings) }));
    return { ok: problems.length === 0, binaryPath, version, problems };
  }

  private installHint(): string {
    return `install it (see the README's engine section) or set engines.${this.id}.binary in tasksgodzilla.config.*`;
  }

  async *run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void> {
    const started = Date.now();
    const settings = request.settings ?? {};
    const binary = findBinary(this.binaryName(settings));
    if (!binary) {
      return failedResult(
        failure("unavailable", `${this.id}: binary "${this.binaryName(settings)}" not found`, {
          hint: this.installHint(),
        }),
      );
    }
    const scratch = mkdtempSync(join(tmpdir(), `tgz-${this.id}-call-`));
    try {
      const ctx: CallContext = {
        settings,
        home: this.home(settings),
        scratch,
        stateDir: this.stateDir(settings),
      };
      const inv = this.adapter.invocation(request, ctx);
      const parser = this.adapter.parser(request, ctx);
      const proc = startProcess({
        command: binary,
        args: [...inv.args],
        cwd: request.cwd,
        env: {
          ...(ctx.home ? this.adapter.homeEnv(ctx.home) : {}),
          ...inv.env,
          ...settings.env,
          ...request.env,
        },
        stdin: inv.stdin,
        timeoutMs: request.timeoutMs,
        maxOutputBytes: request.maxOutputBytes,
        signal,
      });
      yield { type: "started", pid: proc.pid };
      let unreadable = 0;
      for await (const line of proc.lines()) {
        if (!line.trim()) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          unreadable++; // CLIs print warnings between events; a stream of nothing else is judged below
          continue;
        }
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
          for (const ev of parser.event(parsed as Record<string, unknown>)) yield ev;
        }
      }
      let outcome: ProcessOutcome;
      try {
        outcome = await proc.result;
      } catch (err) {
        if (err instanceof BinaryNotFoundError)
          return failedResult(failure("unavailable", err.message, { hint: this.installHint() }));
        throw err;
      }
      const raw = parser.summary();
      const summary = this.adapter.finish ? this.adapter.finish(raw, request, ctx) : raw;
      const fields = {
        finalMessage: summary.finalMessage,
        usage: summary.usage,
        sessionId: summary.sessionId,
        exitCode: outcome.exitCode,
        truncatedBytes: outcome.truncatedBytes,
        durationMs: Date.now() - started,
      };
      if (outcome.timedOut) {
        const why = summary.error ? ` (last error: ${summary.error.message})` : "";
        return failedResult(
          failure(
            "timeout",
            `${this.id} did not finish within ${Math.round(request.timeoutMs / 1000)} s; its process group was killed${why}`,
          ),
          fields,
        );
      }
      if (outcome.aborted) return failedResult(failure("aborted", `${this.id} call aborted`), fields);
      if (summary.error)
        return failedResult(classifyFailure(summary.error.message, summary.error.status), fields);
      if (outcome.exitCode !== 0) {
        const said = tail((outcome.stderr || outcome.stdout).trim(), 1500) || "no output";
        return failedResult(
          classifyFailure(`${this.id} exited with code ${outcome.exitCode}: ${said}`),
          fields,
        );
      }
      if (!summary.finalMessage) {
        return failedResult(
          failure(
            "bad_output",
            `${this.id} exited 0 without a final message (${unreadable} unreadable line(s)): ${tail(outcome.stdout.trim(), 500)}`,
          ),
          fields,
        );
      }
      yield { type: "final", text: summary.finalMessage };
      return { ok: true, ...fields };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
}
