/**
 * One Engine for every agent CLI: finds the binary, prepares the isolated config home, runs the CLI
 * with the prompt on stdin in the step's worktree, turns its JSON lines into normalised events, and
 * maps exit codes, timeouts and reported errors to typed failures. Adapters supply only the differences.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
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
import { failedResult, failure, seconds, stalled } from "../engine-result.js";
import {
  BinaryNotFoundError,
  findBinary,
  type ProcessOutcome,
  runProcess,
  startProcess,
} from "../process/run-process.js";
import { classifyFailure } from "./classify-failure.js";
import { type CallContext, type CliAdapter, EngineSetupError } from "./cli-adapter.js";
import { seedHome } from "./seed-home.js";

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Non-JSON stdout lines kept for a failure message: a CLI's last words. */
const LAST_WORDS = 10;

/** One run of the CLI, with everything it said about a failure (to recognise an unknown session). */
interface Attempt {
  result: EngineResult;
  said: string;
}

export class CliEngine implements Engine {
  readonly specificationVersion = ENGINE_SPECIFICATION_VERSION;
  readonly kind = "cli" as const;

  /** `userHome` is where the user's own CLI config is read from for seeding and credential checks. */
  constructor(
    private readonly adapter: CliAdapter,
    private readonly userHome: () => string = homedir,
  ) {}

  get id(): string {
    return this.adapter.id;
  }

  get capabilities() {
    return this.adapter.capabilities;
  }

  private binaryName(settings: EngineSettings): string {
    return settings.binary ?? this.adapter.binary;
  }

  private homeDir(settings: EngineSettings): string {
    return settings.homeDir ?? join(tmpdir(), `tasksgodzilla-${this.id}-home`);
  }

  private stateDir(settings: EngineSettings): string {
    const dir = join(this.homeDir(settings), ".tasksgodzilla");
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The isolated config home, or undefined when the user's own is used. */
  private isolatedHome(settings: EngineSettings): string | undefined {
    return settings.home === "user" ? undefined : this.homeDir(settings);
  }

  /** Creates, seeds and prepares the isolated home; throws EngineSetupError. */
  private ensureHome(settings: EngineSettings): void {
    const home = this.isolatedHome(settings);
    if (!home) return;
    mkdirSync(home, { recursive: true });
    if (settings.seedFromUser)
      seedHome(home, this.stateDir(settings), this.userHome(), this.adapter.seedFiles);
    this.adapter.prepareHome?.(home);
  }

  private homeEnv(settings: EngineSettings): Record<string, string> {
    const home = this.isolatedHome(settings);
    return home ? this.adapter.homeEnv(home) : {};
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
    try {
      this.ensureHome(settings);
    } catch (err) {
      if (!(err instanceof EngineSetupError)) throw err;
      problems.push({ message: `${this.id}: ${err.message}`, fix: err.fix });
    }
    let version: string | undefined;
    try {
      // with the call's own home: some CLIs write state on start, and never into the user's home
      const out = await runProcess({
        command: binaryPath,
        args: ["--version"],
        cwd: tmpdir(),
        env: { ...this.homeEnv(settings), ...settings.env },
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
    const env = { ...process.env, ...settings.env };
    problems.push(
      ...this.adapter.credentials(env, {
        settings,
        home: this.isolatedHome(settings),
        userHome: this.userHome(),
        stateDir: this.stateDir(settings),
      }),
    );
    return { ok: problems.length === 0, binaryPath, version, problems };
  }

  private installHint(): string {
    return `install it (see the README's engine section) or set engines.${this.id}.binary in tasksgodzilla.config.*`;
  }

  /**
   * Runs the call; when the session to resume is unknown to the CLI (its store was cleared, or it was
   * made elsewhere), runs the same prompt again in a fresh session and says so in the result.
   */
  async *run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void> {
    const started = Date.now();
    const first = yield* this.attempt(request, signal);
    let result = first.result;
    const stale = request.resumeSessionId;
    const unknown = stale && !result.ok ? this.adapter.unknownSession.exec(first.said) : null;
    if (stale && unknown) {
      const fresh = yield* this.attempt(
        {
          ...request,
          resumeSessionId: undefined,
          timeoutMs: Math.max(1000, request.timeoutMs - (Date.now() - started)),
        },
        signal,
      );
      const reason =
        first.said
          .split("\n")
          .find((line) => line.includes(unknown[0]))
          ?.trim() ?? unknown[0];
      result = { ...fresh.result, sessionRestarted: { previousSessionId: stale, reason } };
    } else if (stale && result.ok && result.sessionId && result.sessionId !== stale) {
      // some CLIs start a new session silently for an id they cannot find
      const reason = `${this.id} started session ${result.sessionId} instead of continuing ${stale}`;
      result = { ...result, sessionRestarted: { previousSessionId: stale, reason } };
    }
    result = { ...result, durationMs: Date.now() - started };
    if (result.ok)
      yield {
        type: "final",
        text: result.finalMessage,
        model: result.model,
        requestedModel: result.requestedModel,
      };
    else if (result.error) yield { type: "error", error: result.error };
    return result;
  }

  private async *attempt(
    request: EngineRequest,
    signal: AbortSignal,
  ): AsyncGenerator<EngineEvent, Attempt, void> {
    const settings = request.settings ?? {};
    const binary = findBinary(this.binaryName(settings));
    if (!binary) {
      const error = failure("unavailable", `${this.id}: binary "${this.binaryName(settings)}" not found`, {
        hint: this.installHint(),
      });
      return { result: failedResult(error), said: "" };
    }
    const scratch = mkdtempSync(join(tmpdir(), `tgz-${this.id}-call-`));
    try {
      let ctx: CallContext;
      let inv: ReturnType<CliAdapter["invocation"]>;
      try {
        this.ensureHome(settings);
        ctx = {
          settings,
          home: this.isolatedHome(settings),
          userHome: this.userHome(),
          scratch,
          stateDir: this.stateDir(settings),
        };
        inv = this.adapter.invocation(request, ctx);
      } catch (err) {
        if (!(err instanceof EngineSetupError)) throw err;
        const error = failure("unavailable", `${this.id}: ${err.message}`, { hint: err.fix });
        return { result: failedResult(error), said: "" };
      }
      const parser = this.adapter.parser(request, ctx);
      const proc = startProcess({
        command: binary,
        args: [...inv.args],
        cwd: request.cwd,
        env: { ...this.homeEnv(settings), ...inv.env, ...settings.env, ...request.env },
        stdin: inv.stdin,
        timeoutMs: request.timeoutMs,
        idleTimeoutMs: request.idleTimeoutMs,
        // progress is an event on stdout; stderr warnings and retry notices are not
        activity: "stdout-lines",
        maxOutputBytes: request.maxOutputBytes,
        signal,
      });
      yield { type: "started", pid: proc.pid };
      let unreadable = 0;
      const lastWords: string[] = [];
      for await (const line of proc.lines()) {
        if (!line.trim()) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          // CLIs print warnings between events; a stream of nothing else is judged below
          unreadable++;
          lastWords.push(line.trim());
          if (lastWords.length > LAST_WORDS) lastWords.shift();
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
        if (!(err instanceof BinaryNotFoundError)) throw err;
        return {
          result: failedResult(failure("unavailable", err.message, { hint: this.installHint() })),
          said: "",
        };
      }
      const raw = parser.summary();
      const summary = this.adapter.finish ? this.adapter.finish(raw, request, ctx) : raw;
      const fields = {
        finalMessage: summary.finalMessage,
        usage: summary.usage,
        model: summary.model,
        // said beside the model used only when they differ
        requestedModel: summary.model && summary.model !== request.model ? request.model : undefined,
        usageByModel: summary.usageByModel,
        sessionId: summary.sessionId,
        exitCode: outcome.exitCode,
        truncatedBytes: outcome.truncatedBytes,
      };
      // the stream's own words first: stderr often holds only harmless warnings
      const evidence = [summary.notice, tail(outcome.stderr.trim(), 1500), lastWords.join("\n")];
      const words = evidence.filter(Boolean).join("\n");
      const said = [summary.error?.message, words].filter(Boolean).join("\n");
      const fail = (error: ReturnType<typeof failure>): Attempt => ({
        result: failedResult(error, fields),
        said,
      });
      if (outcome.stall)
        return fail(
          stalled(
            `${this.id} printed no event for ${seconds(outcome.stall.idleMs)}; its process group was killed`,
            outcome.stall,
          ),
        );
      if (outcome.timedOut) {
        const last = summary.error?.message ?? summary.notice;
        return fail(
          failure(
            "timeout",
            `${this.id} did not finish within ${Math.round(request.timeoutMs / 1000)} s; its process group was killed${last ? ` (last error: ${last})` : ""}`,
          ),
        );
      }
      if (outcome.aborted) return fail(failure("aborted", `${this.id} call aborted`));
      if (summary.error) return fail(classifyFailure(summary.error.message, summary.error.status));
      if (outcome.exitCode !== 0) {
        const how =
          outcome.exitCode === null
            ? `was killed by ${outcome.signal}`
            : `exited with code ${outcome.exitCode}`;
        return fail(classifyFailure(`${this.id} ${how}: ${words || "no output"}`, undefined, evidence));
      }
      if (!summary.finalMessage) {
        // a line too long to hold never reached the parser: it may be the event that was missing
        const dropped = outcome.droppedLines ? `, ${outcome.droppedLines} line(s) too long to parse` : "";
        return fail(
          failure(
            "bad_output",
            `${this.id} exited 0 without a final message (${unreadable} unreadable line(s)${dropped}): ${tail(lastWords.join("\n") || outcome.stdout.trim(), 500)}`,
          ),
        );
      }
      return { result: { ok: true, ...fields, durationMs: 0 }, said };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
}
