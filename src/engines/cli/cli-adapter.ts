/**
 * What differs between agent CLIs, and nothing else: how to call one, how to read its event stream,
 * and what it needs in its config home. The shared CliEngine does the rest the same way for all.
 */
import { TasksGodzillaError } from "../../shared/errors.js";
import type {
  EngineCapabilities,
  EngineEvent,
  EngineRequest,
  EngineSettings,
  TokenUsage,
} from "../engine-port.js";

/** The engine cannot be set up for this call (settings that do not fit, a config file it cannot read). */
export class EngineSetupError extends TasksGodzillaError {
  readonly code = "engine_setup";
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

export interface CallContext {
  settings: EngineSettings;
  /** The isolated config home, or undefined when the user's own home is used. */
  home: string | undefined;
  /** The user's own home folder, where their CLI config lives. */
  userHome: string;
  /** A folder of this call's own for files the CLI writes or reads (last message, schemas). */
  scratch: string;
  /** Folder for the adapter's own bookkeeping that outlives a call (e.g. usage totals per thread). */
  stateDir: string;
}

export interface Invocation {
  args: string[];
  env: Record<string, string>;
  /** The prompt, written to stdin which is then closed. */
  stdin: string;
}

export interface StreamSummary {
  finalMessage: string;
  usage?: TokenUsage | undefined;
  /** The model the CLI reports having used (see EngineResult.model). */
  model?: string | undefined;
  /** Each model's part of `usage`, when the CLI used more than one. */
  usageByModel?: Record<string, TokenUsage> | undefined;
  sessionId?: string | undefined;
  /** The failure the stream reported, if any. */
  error?: { message: string; status?: number | undefined } | undefined;
  /** The last warning or error notice the stream printed without failing the call (retries, reconnects). */
  notice?: string | undefined;
}

/** Reads one CLI's JSON event stream, an object per stdout line. */
export interface StreamParser {
  event(obj: Record<string, unknown>): EngineEvent[];
  summary(): StreamSummary;
}

export interface CliAdapter {
  id: string;
  /** Binary name looked up on PATH unless settings name another. */
  binary: string;
  /** Oldest version whose flags and stream format the adapter knows. */
  minVersion: string;
  capabilities: EngineCapabilities;
  /** Files copied from the user's config into the isolated home when `seed_from_user` is set. */
  seedFiles: { from: string; to: string }[];
  /** Environment variable holding the home folder. */
  homeEnv: (home: string) => Record<string, string>;
  /** Writes what the CLI needs in its isolated home (after seeding); throws EngineSetupError. */
  prepareHome?(home: string): void;
  /** What the CLI says when asked to resume a session it does not know. */
  unknownSession: RegExp;
  /** The CLI's flags, environment and stdin for one call; throws EngineSetupError. */
  invocation(request: EngineRequest, ctx: CallContext): Invocation;
  parser(request: EngineRequest, ctx: CallContext): StreamParser;
  /** Credentials problems (never printing secrets), each with its one-line fix. */
  credentials(env: NodeJS.ProcessEnv, ctx: Omit<CallContext, "scratch">): { message: string; fix: string }[];
  /** Adjusts the summary after the process ended (e.g. reads a last-message file, diffs usage). */
  finish?(summary: StreamSummary, request: EngineRequest, ctx: CallContext): StreamSummary;
}

/** What the agent CLIs share: resumable sessions, and the sandbox modes most of them enforce. */
export const AGENT_CAPABILITIES: EngineCapabilities = {
  resume: true,
  structuredOutput: true,
  sandboxModes: ["read-only", "workspace-write", "full-access"],
  promptRequired: true,
};

export function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

export function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function usageOf(
  input: number,
  cachedInput: number,
  output: number,
  reasoning: number,
  cacheWrite = 0,
): TokenUsage {
  return cacheWrite > 0
    ? { input, cachedInput, cacheWrite, output, reasoning, estimated: false }
    : { input, cachedInput, output, reasoning, estimated: false };
}

/** The most of a tool's output a transcript keeps: its end, where results and errors are. */
const TOOL_OUTPUT_MAX = 4000;

/** A tool's output for a `tool_output` event: text as it is, its end when long. */
export function toolOutputText(value: unknown): string {
  const text =
    typeof value === "string"
      ? value
      : Array.isArray(value)
        ? value
            .map((v) => (typeof v === "object" && v !== null && "text" in v ? String(v.text) : brief(v)))
            .join("\n")
        : JSON.stringify(value ?? "");
  return text.length > TOOL_OUTPUT_MAX ? `…${text.slice(-TOOL_OUTPUT_MAX)}` : text;
}

/** A short, single-line rendering of a tool's input for events. */
export function brief(value: unknown, max = 300): string {
  const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}
