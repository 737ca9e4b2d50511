/** Gemini CLI: `gemini --output-format stream-json -p ""` with the prompt on stdin, `--resume`. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent, SandboxMode, TokenUsage } from "../engine-port.js";
import { UsageTally } from "../token-usage.js";
import { statusIn } from "./classify-failure.js";
import {
  AGENT_CAPABILITIES,
  brief,
  type CliAdapter,
  EngineSetupError,
  num,
  obj,
  type StreamSummary,
  str,
  toolOutputText,
  usageOf,
} from "./cli-adapter.js";
import { writeIfChanged } from "./write-if-changed.js";

/** Headless `default` offers read-only tools only; `auto_edit` adds edits; `yolo` adds the shell. */
const APPROVAL_MODE: Record<SandboxMode, string> = {
  "read-only": "default",
  "workspace-write": "auto_edit",
  "full-access": "yolo",
};

/**
 * Gemini reads settings files with comments; JSON.parse does not. Comments are dropped outside strings
 * (the copy in the isolated home is written without them, the user's own file is never touched).
 */
function withoutComments(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      out += text.slice(start, i + 1);
    } else if (ch === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (ch === "/" && text[i + 1] === "*") {
      const close = text.indexOf("*/", i + 2);
      i = close < 0 ? text.length : close + 1;
    } else out += ch;
  }
  return out;
}

/**
 * Usage statistics, update checks and Gemini's own retries (10 attempts a request by default) off,
 * always; API-key auth unless the (seeded) settings chose another way to sign in. Merged into
 * whatever settings.json the isolated home holds, the user's seeded copy too. Every run of the
 * project shares the home, so the file is written only when that changes it, and atomically.
 */
function mergeSettings(home: string): void {
  const file = join(home, ".gemini", "settings.json");
  let settings: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      settings = obj(JSON.parse(withoutComments(readFileSync(file, "utf8"))));
    } catch (err) {
      throw new EngineSetupError(
        `${file} is not valid JSON (${(err as Error).message}), so usage statistics cannot be switched off in it`,
        `correct ${file} — with seed_from_user it is a copy of ~/.gemini/settings.json: correct that one, and it is copied again`,
      );
    }
  }
  const security = obj(settings.security);
  const auth = obj(security.auth);
  const merged = {
    ...settings,
    security: { ...security, auth: { ...auth, selectedType: str(auth.selectedType) ?? "gemini-api-key" } },
    privacy: { ...obj(settings.privacy), usageStatisticsEnabled: false },
    general: { ...obj(settings.general), disableAutoUpdate: true, disableUpdateNag: true, maxAttempts: 1 },
  };
  writeIfChanged(file, `${JSON.stringify(merged, null, 2)}\n`);
}

/**
 * `output_tokens` counts the answer only (candidatesTokenCount); the thinking tokens are not in the
 * stats on their own but in `total_tokens` (the server's totalTokenCount), so they are what the total
 * holds beyond input and answer. Thinking is billed as output: the port's output includes it.
 */
function statsUsage(stats: Record<string, unknown>): TokenUsage {
  const input = num(stats.input_tokens);
  const answer = num(stats.output_tokens);
  const reasoning = Math.max(0, num(stats.total_tokens) - input - answer);
  return usageOf(input, num(stats.cached), answer + reasoning, reasoning);
}

export const geminiAdapter: CliAdapter = {
  id: "gemini",
  binary: "gemini",
  minVersion: "0.50.0",
  capabilities: { ...AGENT_CAPABILITIES, structuredOutput: false },
  seedFiles: [
    { from: ".gemini/settings.json", to: ".gemini/settings.json" },
    // a Google login (`gemini` → "Login with Google") lives here unless the keychain holds it
    { from: ".gemini/oauth_creds.json", to: ".gemini/oauth_creds.json" },
    { from: ".gemini/google_accounts.json", to: ".gemini/google_accounts.json" },
  ],
  homeEnv: (home) => ({ GEMINI_CLI_HOME: home }),
  prepareHome: mergeSettings,
  unknownSession: /Error resuming session/,

  invocation(request, ctx) {
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
    const tally = new UsageTally();
    /** The model the CLI set out with; the stats name the model versions that answered. */
    let initModel: string | undefined;
    let error: StreamSummary["error"];
    /** Tool names by call id, to name what a tool_result answers. */
    const toolNames = new Map<string, string>();
    return {
      event(e): EngineEvent[] {
        switch (e.type) {
          case "init":
            sessionId = str(e.session_id);
            initModel = str(e.model);
            return [{ type: "started", sessionId }];
          case "message":
            if (e.role !== "assistant" || !str(e.content)) return [];
            text.push(str(e.content)!);
            return [{ type: "message", text: str(e.content)! }];
          case "tool_use": {
            const name = str(e.tool_name) ?? "tool";
            if (str(e.tool_id)) toolNames.set(str(e.tool_id)!, name);
            return [{ type: "tool", name, detail: brief(e.parameters) }];
          }
          case "tool_result": {
            // the final message is what the model said after its last tool call
            text = [];
            const output = e.output ?? str(obj(e.error).message);
            return [
              {
                type: "tool_output",
                name: toolNames.get(str(e.tool_id) ?? ""),
                text: output === undefined ? (str(e.status) ?? "") : toolOutputText(output),
                isError: e.status === "error",
              },
            ];
          }
          case "result": {
            const stats = obj(e.stats);
            // per model version the API answered with; the totals alone when the stats name none
            const models = Object.entries(obj(stats.models));
            const perModel: [string | undefined, TokenUsage][] =
              models.length > 0
                ? models.map(([m, s]) => [m, statsUsage(obj(s))])
                : [[initModel, statsUsage(stats)]];
            const events: EngineEvent[] = [];
            for (const [model, usage] of perModel) {
              tally.add(usage, model);
              events.push({ type: "usage", usage, model });
            }
            if (e.status === "error") {
              const err = obj(e.error);
              const message = str(err.message) ?? "gemini reported an error";
              // API errors arrive as "[API Error: {json}]" text, the status inside when the server sent one
              error = { message, status: typeof err.code === "number" ? err.code : statusIn(message) };
            }
            return events;
          }
          default:
            return [];
        }
      },
      summary: (): StreamSummary => ({
        finalMessage: text.join(""),
        usage: tally.usage,
        model: tally.model ?? initModel,
        usageByModel: tally.usageByModel,
        sessionId,
        error,
      }),
    };
  },

  credentials(env, ctx) {
    if (env.GEMINI_API_KEY || env.GOOGLE_API_KEY || env.GOOGLE_GENAI_USE_VERTEXAI) return [];
    if (existsSync(join(ctx.home ?? ctx.userHome, ".gemini", "oauth_creds.json"))) return [];
    return [
      {
        message: "gemini: no credentials (no GEMINI_API_KEY and no Google login in its config home)",
        fix: "export GEMINI_API_KEY=… or set engines.gemini.seed_from_user: true after logging in with `gemini`",
      },
    ];
  },
};
