/** How each real agent CLI is pointed at the fake model server, and the tool it writes files with. */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EngineSettings, SandboxMode } from "../../src/engines/engine-port.js";
import type { FakeModelServer, ModelRequest } from "./fake-model-server.js";

const BIN = fileURLToPath(new URL("./node_modules/.bin/", import.meta.url));

export interface AgentCase {
  engineId: "codex" | "claude-code" | "opencode" | "gemini";
  binary: string;
  model: string;
  settings(url: string): EngineSettings;
  /** The model's tool call that writes `content` to `file` (absolute path in the worktree). */
  writeTool(file: string, content: string): { name: string; args: Record<string, unknown> };
  /** The name the adapter's tool event gives that call. */
  writeToolEvent: string;
  /** The model's tool call that runs a shell command, for as long as it runs (sandbox full-access). */
  shellTool(command: string): { name: string; args: Record<string, unknown> };
  /** A well-formed session id no session of the CLI has. */
  unknownSessionId: string;
  /** The CLI reports thinking tokens on their own (Claude Code counts them as plain output). */
  reportsReasoning: boolean;
  /** The CLI's API reports the prompt tokens written to the cache (only Anthropic's Messages API does). */
  reportsCacheWrites: boolean;
  /**
   * The model the adapter records, from the model the CLI sent and the one the server answered with:
   * the answer where the CLI passes it on, else the model the CLI says it ran.
   */
  reportedModel(sent: string, answered: string): string;
  /**
   * Requests one call makes when each is answered with a server error: 1 where the adapter switched
   * the CLI's own retries off; opencode retries 5 times and cannot be told not to.
   */
  requestsPerServerError: number;
  /**
   * The longest the CLI stays silent while it starts, before its first event, on a machine busy with
   * the whole suite (opencode on a fresh home and Gemini took over 6 s): an idle limit in a test must
   * be longer, or the start itself stalls.
   */
  silentStartMs: number;
  /** The model a request asks for. */
  modelIn(req: ModelRequest): unknown;
  /** Extra arguments for `settings.args`, and whether the requests show their effect. */
  extraArgs: { args: string[]; seen(server: FakeModelServer): boolean };
  /**
   * What a request shows of the sandbox mode, and what it shows for each mode; undefined for Claude
   * Code, whose requests do not show it (its modes are checked by what it lets the agent do).
   */
  sandboxShown?: { of(req: ModelRequest): string; expected: Record<SandboxMode, string> };
}

/** The names of the tools a request offers, among `names`, joined in the order given. */
function offered(req: ModelRequest, names: string[]): string {
  const tools = (Array.isArray(req.body.tools) ? req.body.tools : []) as Record<string, unknown>[];
  const all = tools.flatMap((t) => {
    const declarations = t.functionDeclarations as { name: string }[] | undefined;
    if (declarations) return declarations.map((d) => d.name);
    return [String((t.function as { name?: string } | undefined)?.name ?? t.name)];
  });
  return names.filter((n) => all.includes(n)).join(",");
}

/** A folder named only here, to find in a request. */
const EXTRA_DIR = mkdtempSync(join(tmpdir(), "tgz-extra-dir-"));

const home = (id: string) => join(mkdtempSync(join(tmpdir(), `tgz-${id}-`)), "home");

export const AGENT_CASES: AgentCase[] = [
  {
    engineId: "codex",
    binary: join(BIN, "codex"),
    model: "gpt-5.5",
    settings: (url) => ({
      binary: join(BIN, "codex"),
      homeDir: home("codex"),
      env: { FAKE_KEY: "sk-fake" },
      configOverrides: [
        "model_provider=fake",
        `model_providers.fake={name="fake",base_url="${url}/v1",env_key="FAKE_KEY",wire_api="responses"}`,
      ],
    }),
    writeTool: (file, content) => ({
      name: "exec_command",
      args: { cmd: `printf '%s' '${content}' > '${file}'` },
    }),
    writeToolEvent: "command",
    shellTool: (command) => ({ name: "exec_command", args: { cmd: command, yield_time_ms: 600_000 } }),
    unknownSessionId: "01a2333d-0000-7000-8000-000000000000",
    reportsReasoning: true,
    reportsCacheWrites: false,
    // Codex keeps the model it sent in its session record, never the one the server answered with
    reportedModel: (sent) => sent,
    requestsPerServerError: 1,
    silentStartMs: 10_000,
    modelIn: (req) => req.body.model,
    extraArgs: {
      args: ["-c", 'model_reasoning_summary="detailed"'],
      seen: (server) => (server.requests[0]!.body.reasoning as { summary?: string }).summary === "detailed",
    },
    sandboxShown: {
      of: (req) => JSON.parse(String(req.headers["x-codex-turn-metadata"])).sandbox_mode,
      expected: {
        "read-only": "read-only",
        "workspace-write": "workspace-write",
        "full-access": "danger-full-access",
      },
    },
  },
  {
    engineId: "claude-code",
    binary: join(BIN, "claude"),
    model: "claude-sonnet-4-5",
    settings: (url) => ({
      binary: join(BIN, "claude"),
      homeDir: home("claude"),
      baseUrl: url,
      env: { ANTHROPIC_API_KEY: "sk-ant-fake" },
    }),
    writeTool: (file, content) => ({ name: "Write", args: { file_path: file, content } }),
    writeToolEvent: "Write",
    shellTool: (command) => ({ name: "Bash", args: { command, description: "run it", timeout: 600_000 } }),
    unknownSessionId: "4b1c7f1e-1111-4222-8333-944444444444",
    reportsReasoning: false,
    reportsCacheWrites: true,
    reportedModel: (_sent, answered) => answered,
    requestsPerServerError: 1,
    silentStartMs: 12_000,
    modelIn: (req) => req.body.model,
    extraArgs: {
      args: ["--append-system-prompt", "Extra words from the settings."],
      seen: (server) =>
        JSON.stringify(server.requests[0]!.body.system).includes("Extra words from the settings."),
    },
  },
  {
    engineId: "opencode",
    binary: join(BIN, "opencode"),
    model: "fake-model",
    settings: (url) => ({
      binary: join(BIN, "opencode"),
      homeDir: home("opencode"),
      baseUrl: `${url}/v1`,
      provider: "fake",
      env: { OPENAI_API_KEY: "sk-fake" },
    }),
    writeTool: (file, content) => ({ name: "write", args: { filePath: file, content } }),
    writeToolEvent: "write",
    shellTool: (command) => ({ name: "bash", args: { command, description: "run it", timeout: 600_000 } }),
    unknownSessionId: "ses_0123456789abcdefABCDEFghij",
    reportsReasoning: true,
    reportsCacheWrites: false,
    // opencode names no model in its stream; its session record names the provider/model it ran
    reportedModel: (sent) => `fake/${sent}`,
    requestsPerServerError: 6,
    silentStartMs: 30_000,
    modelIn: (req) => req.body.model,
    extraArgs: {
      // a session with a title of its own needs no title request
      args: ["--title", "Given title"],
      seen: (server) => server.titleRequests.length === 0,
    },
    sandboxShown: {
      of: (req) => offered(req, ["bash", "edit", "write"]),
      expected: { "read-only": "", "workspace-write": "bash,edit,write", "full-access": "bash,edit,write" },
    },
  },
  {
    engineId: "gemini",
    binary: join(BIN, "gemini"),
    model: "gemini-2.5-flash",
    settings: (url) => ({
      binary: join(BIN, "gemini"),
      homeDir: home("gemini"),
      baseUrl: url,
      env: { GEMINI_API_KEY: "fake-key" },
    }),
    writeTool: (file, content) => ({ name: "write_file", args: { file_path: file, content } }),
    writeToolEvent: "write_file",
    shellTool: (command) => ({ name: "run_shell_command", args: { command, description: "run it" } }),
    unknownSessionId: "4b1c7f1e-1111-4222-8333-944444444444",
    reportsReasoning: true,
    reportsCacheWrites: false,
    reportedModel: (_sent, answered) => answered,
    requestsPerServerError: 1,
    silentStartMs: 15_000,
    modelIn: (req) => /\/models\/([^:]+):/.exec(req.path)?.[1],
    extraArgs: {
      args: ["--include-directories", EXTRA_DIR],
      seen: (server) => server.requests[0]!.text.includes(EXTRA_DIR),
    },
    sandboxShown: {
      of: (req) => offered(req, ["replace", "run_shell_command", "write_file"]),
      expected: {
        "read-only": "",
        "workspace-write": "replace,write_file",
        "full-access": "replace,run_shell_command,write_file",
      },
    },
  },
];

/**
 * In CI every CLI must be installed; elsewhere a missing one is skipped, and said so by name: a line
 * is printed here and `skippedBecause` goes into the suite's title.
 */
export function available(c: AgentCase): boolean {
  if (existsSync(c.binary)) return true;
  if (process.env.CI === "true")
    throw new Error(`${c.engineId}: ${c.binary} is missing; run npm install --prefix test/agents`);
  console.log(
    `skipped: the ${c.engineId} tests (${c.binary} is not installed; npm install --prefix test/agents)`,
  );
  return false;
}

/** " (skipped: … not installed)" for a suite title when a CLI is missing, else "". */
export function skippedBecause(...cases: AgentCase[]): string {
  const missing = cases.filter((c) => !existsSync(c.binary)).map((c) => c.binary);
  return missing.length > 0 ? ` (skipped: ${missing.join(", ")} not installed)` : "";
}

/** The project config file's `engines.<id>` entry for a case's settings. */
export function engineConfigEntry(s: EngineSettings): Record<string, unknown> {
  return {
    binary: s.binary,
    base_url: s.baseUrl,
    provider: s.provider,
    config_overrides: s.configOverrides,
    env: s.env,
  };
}
