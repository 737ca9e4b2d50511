/** Claude Code: `claude -p --output-format stream-json --verbose`, prompt on stdin, `--resume`. */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { EngineEvent, SandboxMode, TokenUsage } from "../engine-port.js";
import {
  AGENT_CAPABILITIES,
  brief,
  type CliAdapter,
  list,
  num,
  obj,
  type StreamSummary,
  str,
  usageOf,
} from "./cli-adapter.js";

/** `default` denies edits and Bash in -p mode, which is what read-only means for Claude Code. */
const PERMISSION_MODE: Record<SandboxMode, string> = {
  "read-only": "default",
  "workspace-write": "acceptEdits",
  "full-access": "bypassPermissions",
};

export const claudeCodeAdapter: CliAdapter = {
  id: "claude-code",
  binary: "claude",
  minVersion: "2.0.0",
  capabilities: AGENT_CAPABILITIES,
  seedFiles: [
    { from: ".claude/settings.json", to: "settings.json" },
    { from: ".claude/.credentials.json", to: ".credentials.json" },
  ],
  homeEnv: (home) => ({ CLAUDE_CONFIG_DIR: home }),

  invocation(request, ctx) {
    const mode = PERMISSION_MODE[request.sandbox ?? "workspace-write"];
    const args = ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", mode];
    if (request.model) args.push("--model", request.model);
    if (request.resumeSessionId) args.push("--resume", request.resumeSessionId);
    if (request.outputSchema) args.push("--json-schema", JSON.stringify(request.outputSchema));
    args.push(...(ctx.settings.args ?? []));
    const env: Record<string, string> = {
      // telemetry, error reports and update checks off: nothing leaves the machine but model calls
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_AUTOUPDATER: "1",
    };
    if (ctx.settings.baseUrl) env.ANTHROPIC_BASE_URL = ctx.settings.baseUrl;
    // bypassPermissions refuses to run as root unless told it is inside a sandbox
    if (mode === "bypassPermissions" && process.getuid?.() === 0) env.IS_SANDBOX = "1";
    return { args, env, stdin: request.prompt };
  },

  parser() {
    let sessionId: string | undefined;
    let final = "";
    let usage: TokenUsage | undefined;
    let error: StreamSummary["error"];
    return {
      event(e): EngineEvent[] {
        if (e.type === "system" && e.subtype === "init") {
          sessionId = str(e.session_id);
          return [{ type: "started", sessionId }];
        }
        if (e.type === "assistant") {
          const out: EngineEvent[] = [];
          for (const block of list(obj(e.message).content).map(obj)) {
            if (block.type === "text" && str(block.text))
              out.push({ type: "message", text: str(block.text)! });
            if (block.type === "tool_use")
              out.push({ type: "tool", name: str(block.name) ?? "tool", detail: brief(block.input) });
          }
          return out;
        }
        if (e.type === "result") {
          sessionId = str(e.session_id) ?? sessionId;
          // with --json-schema the answer arrives through the StructuredOutput tool, not as text
          final =
            e.structured_output !== undefined ? JSON.stringify(e.structured_output) : (str(e.result) ?? "");
          const u = obj(e.usage);
          // Anthropic counts cache reads and writes apart from input_tokens; the port's input includes them
          const cached = num(u.cache_read_input_tokens);
          usage = usageOf(
            num(u.input_tokens) + cached + num(u.cache_creation_input_tokens),
            cached,
            num(u.output_tokens),
            0,
          );
          if (e.is_error === true) {
            const status = typeof e.api_error_status === "number" ? e.api_error_status : undefined;
            error = { message: final || str(e.subtype) || "claude reported an error", status };
          }
          return [{ type: "usage", usage }];
        }
        return [];
      },
      summary: (): StreamSummary => ({ finalMessage: error ? "" : final, usage, sessionId, error }),
    };
  },

  credentials(env, ctx) {
    if (env.ANTHROPIC_API_KEY || env.ANTHROPIC_AUTH_TOKEN || env.CLAUDE_CODE_OAUTH_TOKEN) return [];
    if (existsSync(join(ctx.home ?? join(homedir(), ".claude"), ".credentials.json"))) return [];
    return [
      {
        message: "claude-code: no credentials (no ANTHROPIC_API_KEY and no login in its config home)",
        fix: "export ANTHROPIC_API_KEY=… or set engines.claude-code.seed_from_user: true after `claude login`",
      },
    ];
  },
};
