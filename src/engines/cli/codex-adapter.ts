/** Codex CLI: `codex exec --json`, prompt on stdin, `-o` last message, `--output-schema`, `exec resume`. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
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

const SANDBOX: Record<SandboxMode, string> = {
  "read-only": "read-only",
  "workspace-write": "workspace-write",
  "full-access": "danger-full-access",
};

/** A provider table for a self-hosted or local Responses-API server named by `base_url`. */
function providerOverrides(baseUrl: string, provider: string): string[] {
  return [
    `model_provider=${provider}`,
    `model_providers.${provider}={name="${provider}",base_url="${baseUrl}",env_key="OPENAI_API_KEY",wire_api="responses"}`,
  ];
}

/** Codex reports the thread's running total; the ledger remembers it so a resumed call is charged its own part. */
function ledgerPath(stateDir: string, thread: string): string {
  return join(stateDir, `codex-usage-${thread.replace(/[^\w-]/g, "_")}.json`);
}

function minus(a: TokenUsage, b: TokenUsage | undefined): TokenUsage {
  if (!b) return a;
  const d = (x: number, y: number) => Math.max(0, x - y);
  return usageOf(
    d(a.input, b.input),
    d(a.cachedInput, b.cachedInput),
    d(a.output, b.output),
    d(a.reasoning, b.reasoning),
  );
}

export const codexAdapter: CliAdapter = {
  id: "codex",
  binary: "codex",
  minVersion: "0.100.0",
  capabilities: AGENT_CAPABILITIES,
  seedFiles: [
    { from: ".codex/config.toml", to: "config.toml" },
    { from: ".codex/auth.json", to: "auth.json" },
  ],
  homeEnv: (home) => ({ CODEX_HOME: home }),

  invocation(request, ctx) {
    const s = ctx.settings;
    const overrides = [
      // no analytics and no plugin marketplace: nothing leaves the machine but model calls
      "analytics.enabled=false",
      "check_for_update_on_startup=false",
      ...(s.baseUrl ? providerOverrides(s.baseUrl, s.provider ?? "tasksgodzilla") : []),
      ...(request.reasoningEffort ? [`model_reasoning_effort="${request.reasoningEffort}"`] : []),
      ...(s.configOverrides ?? []),
    ];
    const args = [
      "exec",
      "--json",
      "--skip-git-repo-check",
      "-C",
      request.cwd,
      "-o",
      join(ctx.scratch, "last-message.txt"),
    ];
    args.push("--sandbox", SANDBOX[request.sandbox ?? "workspace-write"], "--disable", "plugins");
    for (const o of overrides) args.push("-c", o);
    if (request.model) args.push("-m", request.model);
    if (request.outputSchema) {
      const schemaFile = join(ctx.scratch, "output-schema.json");
      writeFileSync(schemaFile, JSON.stringify(request.outputSchema));
      args.push("--output-schema", schemaFile);
    }
    args.push(...(s.args ?? []));
    if (request.resumeSessionId) args.push("resume", request.resumeSessionId);
    args.push("-");
    return { args, env: {}, stdin: request.prompt };
  },

  parser() {
    let sessionId: string | undefined;
    let final = "";
    let usage: TokenUsage | undefined;
    let error: string | undefined;
    return {
      event(e): EngineEvent[] {
        const item = obj(e.item);
        switch (e.type) {
          case "thread.started":
            sessionId = str(e.thread_id);
            return [{ type: "started", sessionId }];
          case "item.completed":
            if (item.type === "agent_message") {
              final = str(item.text) ?? "";
              return [{ type: "message", text: final }];
            }
            if (item.type === "command_execution")
              return [{ type: "tool", name: "command", detail: brief(item.command) }];
            if (item.type === "file_change") {
              return [
                {
                  type: "tool",
                  name: "file_change",
                  detail: list(item.changes)
                    .map((c) => `${str(obj(c).kind)} ${str(obj(c).path)}`)
                    .join(", "),
                },
              ];
            }
            if (item.type === "mcp_tool_call" || item.type === "web_search")
              return [{ type: "tool", name: String(item.type), detail: brief(item) }];
            return [];
          case "turn.completed": {
            const u = obj(e.usage);
            usage = usageOf(
              num(u.input_tokens),
              num(u.cached_input_tokens),
              num(u.output_tokens),
              num(u.reasoning_output_tokens),
            );
            return [{ type: "usage", usage }];
          }
          case "turn.failed":
            error = str(obj(e.error).message) ?? "turn failed";
            return [];
          case "error":
            // also used for "Reconnecting… n/5" notices; only turn.failed or the exit code ends a call
            error = str(e.message) ?? error;
            return [];
          default:
            return [];
        }
      },
      summary(): StreamSummary {
        return {
          finalMessage: final,
          usage,
          sessionId,
          error: error !== undefined && !final ? { message: error } : undefined,
        };
      },
    };
  },

  finish(summary, request, ctx) {
    const file = join(ctx.scratch, "last-message.txt");
    const finalMessage = existsSync(file)
      ? readFileSync(file, "utf8").trim() || summary.finalMessage
      : summary.finalMessage;
    let usage = summary.usage;
    if (usage && summary.sessionId) {
      const ledger = ledgerPath(ctx.stateDir, summary.sessionId);
      const previous =
        request.resumeSessionId && existsSync(ledger)
          ? (JSON.parse(readFileSync(ledger, "utf8")) as TokenUsage)
          : undefined;
      writeFileSync(ledger, JSON.stringify(usage));
      usage = minus(usage, previous);
    }
    return { ...summary, finalMessage, usage };
  },

  credentials(env, ctx) {
    const keyEnv = /env_key="([^"]+)"/.exec((ctx.settings.configOverrides ?? []).join(" "))?.[1];
    if (keyEnv)
      return env[keyEnv]
        ? []
        : [
            {
              message: `codex: ${keyEnv} is not set (named by the provider's env_key)`,
              fix: `export ${keyEnv}=…`,
            },
          ];
    if (env.OPENAI_API_KEY || env.CODEX_API_KEY) return [];
    const authFile = join(ctx.home ?? join(homedir(), ".codex"), "auth.json");
    if (existsSync(authFile)) return [];
    return [
      {
        message: "codex: no credentials (no OPENAI_API_KEY and no auth.json in its config home)",
        fix: "export OPENAI_API_KEY=… or set engines.codex.seed_from_user: true after `codex login`",
      },
    ];
  },
};
