/**
 * The Engine port: every way of doing a step's work (agent CLIs, shell, replay) implements this.
 * The runner only ever talks to engines through it, so nothing outside src/engines/ knows engine ids.
 */

import type { TokenUsage } from "../shared/token-usage.js";

/** Bumped when the shape of this interface changes, so adapters can be checked for compatibility. */
export const ENGINE_SPECIFICATION_VERSION = "v1" as const;

export type EngineKind = "cli" | "sdk" | "builtin";

/** What the call is for; adapters may pick defaults (sandbox, output format) from it. */
export type EngineRole = "plan" | "exec" | "qa";

export type SandboxMode = "read-only" | "workspace-write" | "full-access";

export interface EngineCapabilities {
  /** Can continue an earlier session by id. */
  resume: boolean;
  /**
   * Holds its final message to `outputSchema` itself. Without it the schema reaches the engine only
   * through the prompt, and the answer is extracted from prose.
   */
  structuredOutput: boolean;
  /**
   * Sandbox modes the engine enforces itself: what a mode forbids, the engine's own mechanism stops
   * (see `sandboxProblem`). A step may ask only for these.
   */
  sandboxModes: SandboxMode[];
  /** Needs a prompt file; engines that act on `inputs` alone (shell) do not. */
  promptRequired: boolean;
  /**
   * Inputs that name a file the engine reads (replay's `recording`): the runner holds them inside the
   * protocol folder and the worktree, symlinks resolved, as it holds `prompt_ref`.
   */
  fileInputs?: readonly string[];
  /**
   * A successful call may end with no final message (a silent command): light QA then checks that
   * the outputs exist, not that they have content. Unset: an empty output fails light QA.
   */
  emptyOutputAllowed?: boolean;
}

// what engines report and the store records: its own module, below both
export type { TokenUsage };

/**
 * Per-engine settings from the project config (`engines.<id>` in tasksgodzilla.config.*): where the
 * binary is, extra arguments and environment, and how to reach a model server. Built-in engines ignore them.
 */
export interface EngineSettings {
  binary?: string | undefined;
  args?: string[] | undefined;
  env?: Record<string, string> | undefined;
  baseUrl?: string | undefined;
  /** Codex `-c key=value` overrides. */
  configOverrides?: string[] | undefined;
  provider?: string | undefined;
  /** `isolated` (default): a config home of its own per project; `user`: the user's own. */
  home?: "isolated" | "user" | undefined;
  /** Folder for the isolated config home. */
  homeDir?: string | undefined;
  /**
   * Copy the user's config and credentials into the isolated home: when the home has no copy yet or
   * the user's file changed since it was copied. What the CLI itself rewrote there is kept otherwise.
   */
  seedFromUser?: boolean | undefined;
  /** Where these settings were given (`engines.<id>`, `TASKSGODZILLA_ENGINE_*` names), for messages. */
  sources?: string[] | undefined;
}

export interface EngineRequest {
  role: EngineRole;
  /** The fully rendered prompt (resolved by the runner, never by the adapter). */
  prompt: string;
  /** Working directory: the step's worktree. */
  cwd: string;
  model?: string | undefined;
  /** Step inputs from the spec (e.g. `command` for the shell engine). */
  inputs: Record<string, unknown>;
  /** Extra environment for the engine process. */
  env: Record<string, string>;
  sandbox?: SandboxMode | undefined;
  /** JSON Schema the final message must follow (QA verdicts, planning). */
  outputSchema?: Record<string, unknown> | undefined;
  /** Session to continue, for engines with `capabilities.resume`. */
  resumeSessionId?: string | undefined;
  /** Wall-clock limit; the engine's process group is killed when it passes. */
  timeoutMs: number;
  /**
   * Longest silence allowed: when the engine gives no output for this long (no event line from an
   * agent CLI, no byte from a command), its process group is killed and the call fails as `stalled`.
   * Unset or 0: no limit.
   */
  idleTimeoutMs?: number | undefined;
  /** Cap on captured output bytes; overflow is dropped and reported, never silently. */
  maxOutputBytes: number;
  settings?: EngineSettings | undefined;
  /** For engines that support it (Codex `model_reasoning_effort`). */
  reasoningEffort?: string | undefined;
}

export type EngineEvent =
  | { type: "started"; pid?: number | undefined; sessionId?: string | undefined }
  | { type: "message"; text: string }
  | { type: "tool"; name: string; detail?: string | undefined }
  /** What a tool call gave back (its output's end, when long), for the transcript. */
  | { type: "tool_output"; name?: string | undefined; text: string; isError?: boolean | undefined }
  /**
   * Tokens used since the previous usage event (the call's usage is their sum), with the model that
   * used them when the engine names it.
   */
  | { type: "usage"; usage: TokenUsage; model?: string | undefined }
  /** The final message, with the model the engine reports (and the one asked for, when that differs). */
  | { type: "final"; text: string; model?: string | undefined; requestedModel?: string | undefined }
  /** What the process wrote to stderr, kept in the transcript as evidence. */
  | { type: "stderr"; text: string }
  | { type: "error"; error: EngineFailure };

export interface EngineResult {
  ok: boolean;
  finalMessage: string;
  /** Real usage when the engine reported it; undefined when it reported nothing. */
  usage?: TokenUsage | undefined;
  /**
   * The model the engine reports having used: the provider's answer when the CLI passes it on, else
   * the model the CLI says it sent. Undefined when the engine names none (cost then falls back to the
   * model asked for).
   */
  model?: string | undefined;
  /** The model asked for, set only when it differs from `model` (an alias resolved, a model swapped). */
  requestedModel?: string | undefined;
  /**
   * Each model's part of `usage`, when the engine reports usage per model and the call used more than
   * one (a Claude Code subagent on another model, Gemini CLI's router).
   */
  usageByModel?: Record<string, TokenUsage> | undefined;
  sessionId?: string | undefined;
  exitCode: number | null;
  /** Set when `ok` is false. */
  error?: EngineFailure | undefined;
  /** Bytes of output dropped because of `maxOutputBytes`. */
  truncatedBytes: number;
  durationMs: number;
  /**
   * Set when the session asked for in `resumeSessionId` was unknown to the engine and the same prompt
   * ran in a fresh session instead, within this call; `sessionId` is then the new session.
   */
  sessionRestarted?: { previousSessionId: string; reason: string } | undefined;
}

export const ENGINE_FAILURE_KINDS = [
  "unavailable",
  "auth",
  "rate_limit",
  "server_error",
  "context_too_long",
  "timeout",
  /** No output for `idleTimeoutMs`: killed as stuck, retryable (a hung stream, a wedged tool). */
  "stalled",
  "crash",
  "bad_output",
  "aborted",
] as const;

export type EngineFailureKind = (typeof ENGINE_FAILURE_KINDS)[number];

/** What a `stalled` failure saw: how long the engine was silent, and the last output it gave before. */
export interface StallReport {
  idleMs: number;
  /** The last line of output (cut short), when there was any. */
  lastOutput?: string | undefined;
}

/** A typed engine failure; `retryable` is decided here, at the adapter boundary. */
export interface EngineFailure {
  kind: EngineFailureKind;
  message: string;
  retryable: boolean;
  /** Delay the provider asked for before a retry, when it gave one. */
  retryAfterMs?: number | undefined;
  /** A one-line fix a user can apply. */
  hint?: string | undefined;
  /** Set on a `stalled` failure. */
  stall?: StallReport | undefined;
}

export interface PreflightResult {
  ok: boolean;
  binaryPath?: string | undefined;
  version?: string | undefined;
  /** Human-readable problems, each with its one-line fix. */
  problems: { message: string; fix: string }[];
}

export interface Engine {
  readonly specificationVersion: typeof ENGINE_SPECIFICATION_VERSION;
  readonly id: string;
  readonly kind: EngineKind;
  readonly capabilities: EngineCapabilities;
  preflight(settings?: EngineSettings): Promise<PreflightResult>;
  /**
   * Runs one call. Yields normalised events and returns the result. Must not throw for engine-side
   * failures: those come back as `{ ok: false, error }`.
   */
  run(request: EngineRequest, signal: AbortSignal): AsyncGenerator<EngineEvent, EngineResult, void>;
}
