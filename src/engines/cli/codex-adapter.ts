/** Codex CLI: `codex exec --json`, prompt on stdin, `-o` last message, `--output-schema`, `exec resume`. */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent, EngineSettings, SandboxMode, TokenUsage } from "../engine-port.js";
import {
  AGENT_CAPABILITIES,
  brief,
  type CallContext,
  type CliAdapter,
  list,
  num,
  obj,
  type StreamSummary,
  str,
  toolOutputText,
  usageOf,
} from "./cli-adapter.js";
import { lastLineContaining } from "./last-line.js";
import { writeIfChanged } from "./write-if-changed.js";

const SANDBOX: Record<SandboxMode, string> = {
  "read-only": "read-only",
  "workspace-write": "workspace-write",
  "full-access": "danger-full-access",
};

/**
 * The provider chosen by the settings: `base_url` defines one (an OpenAI Responses-API server, its key
 * in OPENAI_API_KEY); `provider` alone selects one from the user's config.toml or Codex's built-ins.
 */
function providerOverrides(s: EngineSettings): string[] {
  const provider = s.provider ?? "tasksgodzilla";
  if (s.baseUrl)
    return [
      `model_provider=${provider}`,
      `model_providers.${provider}={name="${provider}",base_url="${s.baseUrl}",env_key="OPENAI_API_KEY",wire_api="responses"}`,
    ];
  return s.provider ? [`model_provider=${s.provider}`] : [];
}

/** Every `-c` override of a call but the per-request ones; later entries win, as in Codex. */
function settingsOverrides(s: EngineSettings): string[] {
  return [
    // no analytics and no plugin marketplace: nothing leaves the machine but model calls
    "analytics.enabled=false",
    "check_for_update_on_startup=false",
    ...providerOverrides(s),
    ...(s.configOverrides ?? []),
  ];
}

const unquote = (v: string) => v.trim().replace(/^"(.*)"$/, "$1");

/** `[model_providers.<id>]` body of a config.toml, or undefined. */
function tomlProviderTable(toml: string, id: string): string | undefined {
  const lines = toml.split("\n");
  const header = lines.findIndex((l) => {
    const m = /^\s*\[\s*model_providers\.("?)([^"\]]+)\1\s*\]\s*$/.exec(l);
    return m?.[2] === id;
  });
  if (header < 0) return undefined;
  const end = lines.findIndex((l, i) => i > header && /^\s*\[/.test(l));
  return lines.slice(header + 1, end < 0 ? undefined : end).join("\n");
}

/** A top-level `key = "value"` of a config.toml (before its first table). */
function tomlTopLevel(toml: string, key: string): string | undefined {
  for (const line of toml.split("\n")) {
    if (/^\s*\[/.test(line)) return undefined;
    const m = new RegExp(`^\\s*${key}\\s*=\\s*(.+?)\\s*(#.*)?$`).exec(line);
    if (m) return unquote(m[1]!);
  }
  return undefined;
}

/** What the effective config says about the provider: its id and, when defined, its table's text. */
function selectedProvider(overrides: string[], toml: string): { id: string; table: string | undefined } {
  const chosen = overrides.filter((o) => o.startsWith("model_provider=")).at(-1);
  const id = chosen
    ? unquote(chosen.slice("model_provider=".length))
    : (tomlTopLevel(toml, "model_provider") ?? "openai");
  const fromOverrides = overrides.filter(
    (o) => o.startsWith(`model_providers.${id}.`) || o.startsWith(`model_providers.${id}=`),
  );
  const table = fromOverrides.length > 0 ? fromOverrides.join("\n") : tomlProviderTable(toml, id);
  return { id, table };
}

/** The config.toml the call's Codex reads: the isolated home's, or the user's own. */
function configToml(ctx: Pick<CallContext, "home" | "userHome">): string {
  const file = join(ctx.home ?? join(ctx.userHome, ".codex"), "config.toml");
  return existsSync(file) ? readFileSync(file, "utf8") : "";
}

/** Codex's own retries of a failed request and of a broken stream (4 and 5 by default, per request). */
const OWN_RETRIES = ["request_max_retries", "stream_max_retries"];

/**
 * `-c` overrides that switch Codex's own retries off, so that the step's retry policy is the only one
 * in force. Codex takes them on a provider defined by a table (base_url's, one in config.toml or in
 * config_overrides), not on a built-in one (openai, ollama …: it refuses to start), nor on an id that
 * is not a bare TOML key. A retry setting the table has already is the user's choice and stays.
 */
function retriesOff(overrides: string[], toml: string): string[] {
  const { id, table } = selectedProvider(overrides, toml);
  if (!table || !/^[\w-]+$/.test(id)) return [];
  return OWN_RETRIES.filter((key) => !new RegExp(`\\b${key}\\b`).test(table)).map(
    (key) => `model_providers.${id}.${key}=0`,
  );
}

/** Codex reports the thread's running total; the ledger remembers it so a resumed call is charged its own part. */
function ledgerPath(stateDir: string, thread: string): string {
  return join(stateDir, `codex-usage-${thread.replace(/[^\w-]/g, "_")}.json`);
}

/** Names in `dir`, last first (the sessions tree is sessions/YYYY/MM/DD: newest first); none if it is gone. */
function newestFirst(dir: string): string[] {
  try {
    return readdirSync(dir).sort().reverse();
  } catch {
    return [];
  }
}

/** The thread's rollout file: sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl under the config home. */
function rolloutFile(codexHome: string, thread: string): string | undefined {
  const sessions = join(codexHome, "sessions");
  for (const year of newestFirst(sessions))
    for (const month of newestFirst(join(sessions, year)))
      for (const day of newestFirst(join(sessions, year, month))) {
        const dir = join(sessions, year, month, day);
        const name = newestFirst(dir).find((f) => f.startsWith("rollout-") && f.endsWith(`-${thread}.jsonl`));
        if (name) return join(dir, name);
      }
  return undefined;
}

/**
 * The model of the thread's latest turn, as Codex recorded it in its rollout: its `--json` stream
 * names no model, and without `-m` the model is whatever its config or default chose. Codex does not
 * keep the model name the server answered with, so this is the model it sent.
 */
function rolloutModel(ctx: CallContext, thread: string | undefined): string | undefined {
  if (!thread) return undefined;
  const file = rolloutFile(ctx.home ?? join(ctx.userHome, ".codex"), thread);
  const line = file && lastLineContaining(file, '"type":"turn_context"');
  if (!line) return undefined;
  try {
    return str(obj(obj(JSON.parse(line)).payload).model);
  } catch {
    return undefined;
  }
}

function minus(a: TokenUsage, b: TokenUsage | undefined): TokenUsage {
  if (!b) return a;
  const d = (x: number, y: number) => Math.max(0, x - y);
  return usageOf(
    d(a.input, b.input),
    d(a.cachedInput, b.cachedInput),
    d(a.output, b.output),
    d(a.reasoning, b.reasoning),
    d(a.cacheWrite ?? 0, b.cacheWrite ?? 0),
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
  unknownSession: /no rollout found for thread id|thread\/resume failed/,

  invocation(request, ctx) {
    const chosen = settingsOverrides(ctx.settings);
    const overrides = [
      ...chosen,
      ...retriesOff(chosen, configToml(ctx)),
      ...(request.reasoningEffort ? [`model_reasoning_effort="${request.reasoningEffort}"`] : []),
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
    args.push(...(ctx.settings.args ?? []));
    if (request.resumeSessionId) args.push("resume", request.resumeSessionId);
    args.push("-");
    return { args, env: {}, stdin: request.prompt };
  },

  parser(request, ctx) {
    let sessionId: string | undefined;
    let usage: TokenUsage | undefined;
    let model: string | undefined;
    let failed: string | undefined;
    let notice: string | undefined;
    /** The thread's total before this call, when it continues an earlier one. */
    let before: TokenUsage | undefined;
    return {
      event(e): EngineEvent[] {
        const item = obj(e.item);
        switch (e.type) {
          case "thread.started": {
            sessionId = str(e.thread_id);
            const ledger = sessionId && ledgerPath(ctx.stateDir, sessionId);
            if (ledger && request.resumeSessionId === sessionId && existsSync(ledger))
              before = JSON.parse(readFileSync(ledger, "utf8")) as TokenUsage;
            return [{ type: "started", sessionId }];
          }
          case "item.completed":
            if (item.type === "agent_message") return [{ type: "message", text: str(item.text) ?? "" }];
            if (item.type === "command_execution") {
              const exit = typeof item.exit_code === "number" ? item.exit_code : null;
              const output = str(item.aggregated_output) ?? "";
              return [
                { type: "tool", name: "command", detail: brief(item.command) },
                ...(output || (exit !== null && exit !== 0)
                  ? [
                      {
                        type: "tool_output" as const,
                        name: "command",
                        text: `${toolOutputText(output)}${exit !== null && exit !== 0 ? `${output ? "\n" : ""}(exit ${exit})` : ""}`,
                        isError: exit !== null && exit !== 0,
                      },
                    ]
                  : []),
              ];
            }
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
            const total = usageOf(
              num(u.input_tokens),
              num(u.cached_input_tokens),
              num(u.output_tokens),
              num(u.reasoning_output_tokens),
              num(u.cache_write_input_tokens),
            );
            // atomic: a resumed call in another run may read the ledger at the same moment
            if (sessionId) writeIfChanged(ledgerPath(ctx.stateDir, sessionId), JSON.stringify(total));
            usage = minus(total, before);
            model = rolloutModel(ctx, sessionId);
            return [{ type: "usage", usage, model }];
          }
          case "turn.failed":
            // decides the call even after the agent spoke: a turn that failed midway is a failure
            failed = str(obj(e.error).message) ?? notice ?? "turn failed";
            return [];
          case "error":
            // also used for "Reconnecting… n/5" notices; only turn.failed or the exit code ends a call
            notice = str(e.message) ?? notice;
            return [];
          default:
            return [];
        }
      },
      summary(): StreamSummary {
        // the final message is the -o file's, read in finish()
        return {
          finalMessage: "",
          usage,
          model,
          sessionId,
          error: failed ? { message: failed } : undefined,
          notice,
        };
      },
    };
  },

  finish(summary, _request, ctx) {
    const file = join(ctx.scratch, "last-message.txt");
    return {
      ...summary,
      finalMessage: existsSync(file) ? readFileSync(file, "utf8").trim() : "",
      // a turn that failed before completing still ran on a model
      model: summary.model ?? rolloutModel(ctx, summary.sessionId),
    };
  },

  credentials(env, ctx) {
    const home = ctx.home ?? join(ctx.userHome, ".codex");
    const provider = selectedProvider(settingsOverrides(ctx.settings), configToml(ctx));
    if (provider.id !== "openai") {
      const keyEnv = provider.table && /env_key\s*=\s*"([^"]+)"/.exec(provider.table)?.[1];
      // a table without env_key (a local server) or a built-in like ollama needs no key; an unknown
      // provider is Codex's to report
      if (!keyEnv || env[keyEnv]) return [];
      return [
        {
          message: `codex: ${keyEnv} is not set (the env_key of model provider "${provider.id}")`,
          fix: `export ${keyEnv}=…${ctx.settings.baseUrl ? " (any value for a server that takes none)" : ""}`,
        },
      ];
    }
    if (env.OPENAI_API_KEY || env.CODEX_API_KEY || existsSync(join(home, "auth.json"))) return [];
    return [
      {
        message: "codex: no credentials (no OPENAI_API_KEY and no auth.json in its config home)",
        fix: "export OPENAI_API_KEY=… or set engines.codex.seed_from_user: true after `codex login`",
      },
    ];
  },
};
