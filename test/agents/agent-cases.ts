/** How each real agent CLI is pointed at the fake model server, and the tool it writes files with. */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EngineSettings } from "../../src/engines/engine-port.js";

const BIN = fileURLToPath(new URL("./node_modules/.bin/", import.meta.url));

export interface AgentCase {
  engineId: "codex" | "claude-code" | "opencode" | "gemini";
  binary: string;
  model: string;
  settings(url: string): EngineSettings;
  /** The model's tool call that writes `content` to `file` (absolute path in the worktree). */
  writeTool(file: string, content: string): { name: string; args: Record<string, unknown> };
  /** The CLI retries server errors on its own for minutes; only the engine timeout ends it. */
  retriesServerErrorsForever: boolean;
}

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
        `model_providers.fake={name="fake",base_url="${url}/v1",env_key="FAKE_KEY",wire_api="responses",request_max_retries=0,stream_max_retries=0}`,
      ],
    }),
    writeTool: (file, content) => ({
      name: "exec_command",
      args: { cmd: `printf '%s' '${content}' > '${file}'` },
    }),
    retriesServerErrorsForever: false,
  },
  {
    engineId: "claude-code",
    binary: join(BIN, "claude"),
    model: "claude-sonnet-4-5",
    settings: (url) => ({
      binary: join(BIN, "claude"),
      homeDir: home("claude"),
      baseUrl: url,
      env: { ANTHROPIC_API_KEY: "sk-ant-fake", CLAUDE_CODE_MAX_RETRIES: "0" },
    }),
    writeTool: (file, content) => ({ name: "Write", args: { file_path: file, content } }),
    retriesServerErrorsForever: false,
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
      // opencode's embedded npm client looks up its plugins on first start: a closed local port keeps it home
      env: { OPENAI_API_KEY: "sk-fake", npm_config_registry: "http://127.0.0.1:9/" },
    }),
    writeTool: (file, content) => ({ name: "write", args: { filePath: file, content } }),
    retriesServerErrorsForever: true,
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
    retriesServerErrorsForever: true,
  },
];

/** In CI every CLI must be installed; elsewhere a missing one is skipped by name. */
export function available(c: AgentCase): boolean {
  if (existsSync(c.binary)) return true;
  if (process.env.CI === "true")
    throw new Error(`${c.engineId}: ${c.binary} is missing; run npm install --prefix test/agents`);
  return false;
}
