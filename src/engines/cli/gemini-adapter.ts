/** Gemini CLI: `gemini --output-format stream-json -p ""` with the prompt on stdin, `--resume`. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent, SandboxMode, TokenUsage } from "../engine-port.js";
import {
  AGENT_CAPABILITIES,
  brief,
  type CliAdapter,
  num,
  obj,
  type StreamSummary,
  str,
  usageOf,
} from "./cli-adapter.js";

/** Headless `default` offers read-only tools only; `auto_edit` adds edits; `yolo` adds the shell. */
const APPROVAL_MODE: Record<SandboxMode, string> = {
  "read-only": "default",
  "workspace-write": "auto_edit",
  "full-access": "yolo",
};

/** Usage statistics and update checks off, API-key auth: written once into the isolated home. */
function writeSettings(home: string): void {
  const file = join(home, ".gemini", "settings.json");
  if (existsSync(file)) return;
  mkdirSync(join(home, ".gemini"), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify({
      security: { auth: { selectedType: "gemini-api-key" } },
      privacy: { usageStatisticsEnabled: false },
      general: { disableAutoUpdate: true, disableUpdateNag: true },
    }),
  );
}

export const geminiAdapter: CliAdapter = {
  id: "gemini",
  binary: "gemini",
  minVersion: "0.50.0",
  capabilities: { ...AGENT_CAPABILITIES, structuredOutput: false },
  seedFiles: [{ from: ".gemini/settings.json", to: ".gemini/settings.json" }],
  homeEnv: (home) => ({ GEMINI_CLI_HOME: home }),

  invocation(request, ctx) {
    if (ctx.home) writeSettings(ctx.home);
    const args = [
      "--output-format",
      "stream-json",
      "--approval-mode",
      APPROVAL_MODE[request.sandbox ?? "workspace-write"],
    ];
    if (request.model) args.push("-m", request.model);
    if (request.resumeSessionId) args.push("--resume", request.resumeSessionId);
    args.push(...(ctx.settings.args ?? []), "-p", "");
    const env: Record<string, string> = { GEMINI_CLI_TRUST_WORKSPACE: "true" };
    if (ctx.settings.baseUrl) env.GOOGLE_GEMINI_BASE_URL = ctx.settings.baseUrl;
    return { args, env, stdin: request.prompt };
  },

  parser() {
    let sessionId: string | undefined;
    let text: string[] = [];
    let usage: TokenUsage | undefined;
    let error: StreamSummary["error"];
    return {
      event(e): EngineEvent[] {
        switch (e.type) {
          case "init":
            sessionId = str(e.session_id);
            return [{ type: "started", sessionId }];
          case "message":
            if (e.role !== "assistant" || !str(e.content)) return [];
            text.push(str(e.content)!);
            return [{ type: "message", text: str(e.content)! }];
          case "tool_use":
            return [{ type: "tool", name: str(e.tool_name) ?? "tool", detail: brief(e.parameters) }];
          case "tool_result":
            // the final message is what the model said after its last tool call
            text = [];
            return [];
          case "result": {
            const stats = obj(e.stats);
            usage = usageOf(num(stats.input_tokens), num(stats.cached), num(stats.output_tokens), 0);
            if (e.status === "error")
              error = { message: str(obj(e.error).message) ?? "gemini reported an error" };
            return [{ type: "usage", usage }];
          }
          default:
            return [];
        }
      },
      summary: (): StreamSummary => ({ finalMessage: text.join(""), usage, sessionId, error }),
    };
  },

  credentials(env) {
    if (env.GEMINI_API_KEY || env.GOOGLE_API_KEY || env.GOOGLE_GENAI_USE_VERTEXAI) return [];
    return [
      { message: "gemini: no credentials (GEMINI_API_KEY is not set)", fix: "export GEMINI_API_KEY=…" },
    ];
  },
};
