/** opencode: `opencode run --format json`, prompt on stdin, `-s` to continue a session. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent, EngineRequest, EngineSettings, SandboxMode, TokenUsage } from "../engine-port.js";
import { addUsage } from "../token-usage.js";
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

/**
 * opencode asks before edits and commands, and a headless run cannot answer, so the sandbox mode is
 * turned into its permission table. Read-only is enforced (no edit, write or shell tool is offered);
 * opencode does not confine commands to the worktree, so workspace-write is not one of its modes: a
 * step must ask for full-access to run it with edits and commands.
 */
const PERMISSION: Record<SandboxMode, { edit: string; bash: string }> = {
  "read-only": { edit: "deny", bash: "deny" },
  "workspace-write": { edit: "allow", bash: "allow" },
  "full-access": { edit: "allow", bash: "allow" },
};

/**
 * An OpenAI-compatible provider for `base_url`, its key read from OPENAI_API_KEY by opencode itself.
 * It is the only provider the call may use: the model (and the session-title model) are set to it.
 */
function providerConfig(baseUrl: string, provider: string, model: string) {
  const modelName = model.slice(model.indexOf("/") + 1);
  return {
    provider: {
      [provider]: {
        npm: "@ai-sdk/openai-compatible",
        name: provider,
        options: { baseURL: baseUrl, apiKey: "{env:OPENAI_API_KEY}" },
        models: { [modelName]: { name: modelName, tool_call: true } },
      },
    },
    model: `${provider}/${modelName}`,
    small_model: `${provider}/${modelName}`,
  };
}

/**
 * The `provider/model` id opencode is run with: with a base URL the model is the provider's, otherwise
 * opencode's own id. Its JSON stream names no model; its session record names this one.
 */
function modelId(request: EngineRequest, s: EngineSettings): string | undefined {
  const provider = s.provider ?? "tasksgodzilla";
  return request.model && s.baseUrl && !request.model.includes("/")
    ? `${provider}/${request.model}`
    : request.model;
}

/**
 * opencode's embedded npm client looks up its plugin packages on the registry on a fresh home; a
 * closed loopback port makes that fail at once (the run goes on without them). An `npm_config_registry`
 * in the engine's `env` setting takes precedence.
 */
const NO_REGISTRY = "http://127.0.0.1:9/";

/** Whether opencode's auth store (`opencode auth login`) in a data home holds any provider. */
function loggedIn(dataHome: string): boolean {
  try {
    return (
      Object.keys(obj(JSON.parse(readFileSync(join(dataHome, "opencode", "auth.json"), "utf8")))).length > 0
    );
  } catch {
    return false;
  }
}

export const opencodeAdapter: CliAdapter = {
  id: "opencode",
  binary: "opencode",
  minVersion: "1.0.0",
  capabilities: {
    ...AGENT_CAPABILITIES,
    structuredOutput: false,
    sandboxModes: ["read-only", "full-access"],
  },
  seedFiles: [
    { from: ".config/opencode/opencode.json", to: "config/opencode/opencode.json" },
    { from: ".local/share/opencode/auth.json", to: "data/opencode/auth.json" },
  ],
  homeEnv: (home) => ({
    XDG_CONFIG_HOME: `${home}/config`,
    XDG_DATA_HOME: `${home}/data`,
    XDG_CACHE_HOME: `${home}/cache`,
    XDG_STATE_HOME: `${home}/state`,
  }),
  unknownSession: /Session not found/,

  invocation(request, ctx) {
    const s = ctx.settings;
    const provider = s.provider ?? "tasksgodzilla";
    const model = modelId(request, s);
    if (s.baseUrl && !model)
      throw new EngineSetupError(
        "with base_url opencode needs a model (else it falls back to its default provider)",
        "set the step's model, or models.exec / models.qa in tasksgodzilla.config.*",
      );
    const args = ["run", "--format", "json", "--dir", request.cwd];
    if (model) args.push("-m", model);
    if (request.resumeSessionId) args.push("-s", request.resumeSessionId);
    args.push(...(s.args ?? []));
    const config = {
      autoupdate: false,
      share: "disabled",
      permission: PERMISSION[request.sandbox ?? "workspace-write"],
      ...(s.baseUrl && model ? providerConfig(s.baseUrl, provider, model) : {}),
    };
    const env = {
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      npm_config_registry: NO_REGISTRY,
      OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
    };
    return { args, env, stdin: request.prompt };
  },

  parser(request, ctx) {
    // without a model opencode picks its configured default, which it does not name: left unreported
    const model = modelId(request, ctx.settings);
    let sessionId: string | undefined;
    let stepText: string[] = [];
    let final = "";
    let usage: TokenUsage | undefined;
    let error: StreamSummary["error"];
    return {
      event(e): EngineEvent[] {
        const out: EngineEvent[] = [];
        if (!sessionId && str(e.sessionID)) {
          sessionId = str(e.sessionID);
          out.push({ type: "started", sessionId });
        }
        const part = obj(e.part);
        if (e.type === "step_start") stepText = [];
        else if (e.type === "text" && str(part.text)) {
          stepText.push(str(part.text)!);
          out.push({ type: "message", text: str(part.text)! });
        } else if (e.type === "tool_use") {
          const state = obj(part.state);
          const name = str(part.tool) ?? "tool";
          out.push({ type: "tool", name, detail: brief(state.input) });
          const output = state.error ?? state.output;
          if (output !== undefined)
            out.push({
              type: "tool_output",
              name,
              text: toolOutputText(output),
              isError: state.status === "error",
            });
        } else if (e.type === "step_finish") {
          // usage is per step: the call's total is the sum. opencode takes cache reads and writes out
          // of `input` and reasoning out of `output`; the port's figures include them
          const t = obj(part.tokens);
          const cache = obj(t.cache);
          const cached = num(cache.read);
          const reasoning = num(t.reasoning);
          const written = num(cache.write);
          const step = usageOf(
            num(t.input) + cached + written,
            cached,
            num(t.output) + reasoning,
            reasoning,
            written,
          );
          usage = addUsage(usage, step);
          if (stepText.length > 0) final = stepText.join("");
          out.push({ type: "usage", usage: step, model });
        } else if (e.type === "error") {
          const err = obj(e.error);
          const data = obj(err.data);
          error = {
            message: str(data.message) ?? str(err.name) ?? "opencode reported an error",
            status: typeof data.statusCode === "number" ? data.statusCode : undefined,
          };
        }
        return out;
      },
      summary: (): StreamSummary => ({
        finalMessage: final || stepText.join(""),
        usage,
        model: usage ? model : undefined,
        sessionId,
        error,
      }),
    };
  },

  credentials(env, ctx) {
    if (ctx.settings.baseUrl)
      return env.OPENAI_API_KEY
        ? []
        : [
            {
              message: "opencode: OPENAI_API_KEY is not set (the key of the base_url provider)",
              fix: "export OPENAI_API_KEY=… (any value for a server that takes none)",
            },
          ];
    // otherwise opencode finds keys in its auth store, its config or the providers' own variables
    const dataHome = ctx.home ? join(ctx.home, "data") : join(ctx.userHome, ".local", "share");
    const configHome = ctx.home ? join(ctx.home, "config") : join(ctx.userHome, ".config");
    const hasConfig = existsSync(join(configHome, "opencode", "opencode.json"));
    const hasKeyVar = Object.keys(env).some((k) => /_API_KEY$/.test(k) && env[k]);
    if (loggedIn(dataHome) || hasConfig || hasKeyVar) return [];
    return [
      {
        message:
          "opencode: no credentials (no login in its auth store, no opencode.json, no *_API_KEY variable)",
        fix: "run `opencode auth login` and set engines.opencode.seed_from_user: true, or export the provider's API key",
      },
    ];
  },
};
