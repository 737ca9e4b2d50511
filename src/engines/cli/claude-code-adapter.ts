/** Claude Code: `claude -p --output-format stream-json --verbose`, prompt on stdin, `--resume`. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent, SandboxMode, TokenUsage } from "../engine-port.js";
import { UsageTally } from "../token-usage.js";
import {
  AGENT_CAPABILITIES,
  brief,
  type CliAdapter,
  list,
  num,
  obj,
  type StreamSummary,
  str,
  toolOutputText,
  usageOf,
} from "./cli-adapter.js";

/** `default` denies edits and Bash in -p mode, which is what read-only means for Claude Code. */
const PERMISSION_MODE: Record<SandboxMode, string> = {
  "read-only": "default",
  "workspace-write": "acceptEdits",
  "full-access": "bypassPermissions",
};

/**
 * The invocation's usage, per model. `modelUsage` (per model, subagents included) is the complete
 * figure: after a fallback to the non-streaming API `usage` stays at zero while `modelUsage` counts
 * the call. Anthropic counts cache reads and writes apart from input tokens; the port's input includes
 * them. Thinking is billed as output and not counted apart.
 */
function resultUsage(e: Record<string, unknown>): Map<string, TokenUsage> {
  const perModel = Object.entries(obj(e.modelUsage)).map(([model, m]) => [model, obj(m)] as const);
  if (perModel.length > 0) {
    return new Map(
      perModel.map(([model, m]) => {
        const cached = num(m.cacheReadInputTokens);
        const written = num(m.cacheCreationInputTokens);
        return [
          model,
          usageOf(num(m.inputTokens) + cached + written, cached, num(m.outputTokens), 0, written),
        ];
      }),
    );
  }
  const u = obj(e.usage);
  const cached = num(u.cache_read_input_tokens);
  const written = num(u.cache_creation_input_tokens);
  const usage = usageOf(num(u.input_tokens) + cached + written, cached, num(u.output_tokens), 0, written);
  return new Map([["", usage]]);
}

/**
 * The name the API answered with for a model Claude Code asked for: the answer names the dated
 * snapshot an alias resolved to (`claude-opus-4-8` → `claude-opus-4-8-20251201`), Claude Code's own
 * figures the name it sent.
 */
function answeredName(sent: string, answered: Set<string>): string {
  const matches = [...answered].filter((a) => a === sent || a.startsWith(`${sent}-`));
  return matches.length === 1 ? matches[0]! : sent;
}

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
  unknownSession: /No conversation found with session ID|--resume requires a valid session ID/,

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
      // its own retries off (10 by default, minutes of backoff): the step's retry policy decides
      CLAUDE_CODE_MAX_RETRIES: "0",
    };
    if (ctx.settings.baseUrl) env.ANTHROPIC_BASE_URL = ctx.settings.baseUrl;
    // bypassPermissions refuses to run as root unless told it is inside a sandbox
    if (mode === "bypassPermissions" && process.getuid?.() === 0) env.IS_SANDBOX = "1";
    return { args, env, stdin: request.prompt };
  },

  parser() {
    let sessionId: string | undefined;
    let final = "";
    const tally = new UsageTally();
    let error: StreamSummary["error"];
    /** The model Claude Code says it will use (an alias already resolved), then the API's answers. */
    let initModel: string | undefined;
    let mainModel: string | undefined;
    const answered = new Set<string>();
    /** Tool names by call id, to name what a tool_result answers. */
    const toolNames = new Map<string, string>();
    return {
      event(e): EngineEvent[] {
        if (e.type === "system" && e.subtype === "init") {
          sessionId = str(e.session_id);
          initModel = str(e.model);
          return [{ type: "started", sessionId }];
        }
        if (e.type === "assistant") {
          // "<synthetic>" marks a message Claude Code made up itself (an error shown as a reply)
          const model = str(obj(e.message).model);
          if (model && !model.startsWith("<")) {
            answered.add(model);
            if (e.parent_tool_use_id == null) mainModel = model;
          }
          const out: EngineEvent[] = [];
          for (const block of list(obj(e.message).content).map(obj)) {
            if (block.type === "text" && str(block.text))
              out.push({ type: "message", text: str(block.text)! });
            if (block.type === "tool_use") {
              const name = str(block.name) ?? "tool";
              if (str(block.id)) toolNames.set(str(block.id)!, name);
              out.push({ type: "tool", name, detail: brief(block.input) });
            }
          }
          return out;
        }
        if (e.type === "user")
          return list(obj(e.message).content)
            .map(obj)
            .filter((block) => block.type === "tool_result")
            .map((block) => ({
              type: "tool_output" as const,
              name: toolNames.get(str(block.tool_use_id) ?? ""),
              text: toolOutputText(block.content),
              isError: block.is_error === true,
            }));
        if (e.type === "result") {
          sessionId = str(e.session_id) ?? sessionId;
          // with --json-schema the answer arrives through the StructuredOutput tool, not as text
          final =
            e.structured_output !== undefined ? JSON.stringify(e.structured_output) : (str(e.result) ?? "");
          const perModel = resultUsage(e);
          const events: EngineEvent[] = [];
          for (const [sent, usage] of perModel) {
            const model = sent ? answeredName(sent, answered) : (mainModel ?? initModel);
            tally.add(usage, model);
            events.push({ type: "usage", usage, model });
          }
          if (e.is_error === true) {
            const status = typeof e.api_error_status === "number" ? e.api_error_status : undefined;
            // errors before the first model call (an unknown session) come in `errors`, not `result`
            const errors = list(e.errors).filter((x): x is string => typeof x === "string");
            error = {
              message: final || errors.join("; ") || str(e.subtype) || "claude reported an error",
              status,
            };
          }
          return events;
        }
        return [];
      },
      summary: (): StreamSummary => ({
        finalMessage: error ? "" : final,
        usage: tally.usage,
        model: mainModel ?? tally.model ?? initModel,
        usageByModel: tally.usageByModel,
        sessionId,
        error,
      }),
    };
  },

  credentials(env, ctx) {
    if (env.ANTHROPIC_API_KEY || env.ANTHROPIC_AUTH_TOKEN || env.CLAUDE_CODE_OAUTH_TOKEN) return [];
    if (existsSync(join(ctx.home ?? join(ctx.userHome, ".claude"), ".credentials.json"))) return [];
    return [
      {
        message: "claude-code: no credentials (no ANTHROPIC_API_KEY and no login in its config home)",
        fix: "export ANTHROPIC_API_KEY=… or set engines.claude-code.seed_from_user: true after `claude login`",
      },
    ];
  },
};
