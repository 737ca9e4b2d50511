/**
 * Effective configuration. Precedence, highest first: step spec (applied by the runner) > project
 * config file > TASKSGODZILLA_* environment > built-in defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import YAML from "yaml";
import { isTimeZone } from "../cost/budget-day.js";
import type { PriceSettings } from "../cost/price-table.js";
import type { EngineSettings } from "../engines/engine-port.js";
import type { NotificationsConfig } from "../notify/notify-config.js";
import { InvalidInputError } from "../shared/errors.js";
import type { BudgetMode, QaPolicy } from "../spec/schema.js";
import { jsonPointer } from "../spec/validate-spec.js";
import { type TelemetrySettings, telemetrySettings } from "../telemetry/telemetry-settings.js";
import { ConfigFile } from "./config-schema.js";
import { dataDir } from "./data-paths.js";
import { engineHomeRoot, engineSettings } from "./engine-settings.js";

export const CONFIG_FILE_NAMES = [
  "tasksgodzilla.config.json",
  "tasksgodzilla.config.yaml",
  "tasksgodzilla.config.yml",
];

export interface EffectiveConfig {
  /** Default engine for steps that name none. Built-in: codex. */
  engine: string;
  models: { plan?: string | undefined; exec?: string | undefined; qa?: string | undefined };
  sandbox?: "read-only" | "workspace-write" | "full-access" | undefined;
  qa: {
    /** Built-in: light (deterministic checks need no agent). */
    policy: QaPolicy;
    engine?: string | undefined;
    prompt?: string | undefined;
    checks: string[];
    requireChanges: boolean;
  };
  budgets: {
    /** Built-in: strict. */
    mode: BudgetMode;
    maxTokensPerStep?: number | undefined;
    maxTokensPerProtocol?: number | undefined;
    maxTokensPerProject?: number | undefined;
    /** Money limits in USD; none built in. */
    maxUsdPerStep?: number | undefined;
    maxUsdPerProtocol?: number | undefined;
    maxUsdPerProject?: number | undefined;
    maxUsdPerProjectPerDay?: number | undefined;
    /** Built-in: false. A model without a price blocks a call under a strict money budget. */
    allowUnknownCost: boolean;
    /** Built-in: UTC. The time zone of the daily cap's day. */
    timeZone: string;
  };
  /** Price table files and inline prices laid over the shipped table (see src/cost/price-table.ts). */
  prices: PriceSettings;
  /** Where run traces go: the file's `telemetry` over the OTEL_* variables; off without an endpoint. */
  telemetry: TelemetrySettings;
  /** The project's outgoing webhooks (the file's `notifications`); none built in. */
  notifications: NotificationsConfig;
  /** Built-in: 1200 s per engine call. */
  timeoutSeconds: number;
  /** Built-in: 600 s without output before an engine call is killed as stalled; 0: no limit. */
  idleTimeoutSeconds: number;
  /** Built-in: 3. */
  maxInlineTriggerDepth: number;
  /** Built-in: 4 MiB of captured output per call. */
  maxOutputBytes: number;
  /** Built-in: 2 retries of a retryable engine failure (rate limit, server error, stall), after its hinted delay. */
  engineRetries: number;
  /** Built-in: restore. What a loop does to a protocol worktree before going back. */
  loopRestore: "restore" | "keep";
  /** Per-engine settings (file over env), each with its isolated config home. */
  engines: Record<string, EngineSettings>;
  /** Folder holding this project's isolated engine config homes. */
  engineHomeRoot: string;
  /** The data dir (TASKSGODZILLA_DATA_DIR, else the per-user one): protocol worktrees live under it. */
  dataDir: string;
  /** Where each value came from: what a project's stored defaults may still fill in. */
  sources: Record<string, "file" | "project" | "env" | "default">;
  configFile?: string | undefined;
}

export class ConfigError extends InvalidInputError {}

export const BUILT_IN_DEFAULTS = {
  engine: "codex",
  qaPolicy: "light" as QaPolicy,
  budgetMode: "strict" as BudgetMode,
  timeoutSeconds: 1200,
  idleTimeoutSeconds: 600,
  maxInlineTriggerDepth: 3,
  maxOutputBytes: 4 * 1024 * 1024,
  engineRetries: 2,
  loopRestore: "restore" as "restore" | "keep",
};

export function findConfigFile(repoDir: string): string | undefined {
  return CONFIG_FILE_NAMES.map((n) => join(repoDir, n)).find((p) => existsSync(p));
}

export function readConfigFile(path: string): ConfigFile {
  let raw: unknown;
  try {
    const text = readFileSync(path, "utf8");
    raw = path.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: cannot parse: ${(err as Error).message}`);
  }
  const parsed = ConfigFile.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${jsonPointer(i.path) || "/"}: ${i.message}`);
    throw new ConfigError(`${path}: invalid config\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/** A number from the environment, held to the same rules as the config file's field. */
function envNumber(
  env: NodeJS.ProcessEnv,
  key: string,
  rule: { integer: boolean; positive: boolean },
): number | undefined {
  const v = env[key];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  const ok = Number.isFinite(n) && (rule.positive ? n > 0 : n >= 0) && (!rule.integer || Number.isInteger(n));
  if (!ok)
    throw new ConfigError(
      `${key}=${v}: expected a ${rule.positive ? "positive" : "non-negative"} ${rule.integer ? "whole number" : "number"}`,
    );
  return n;
}

const COUNT = { integer: true, positive: false };
const USD = { integer: false, positive: true };
const POSITIVE_COUNT = { integer: true, positive: true };

function envEnum<T extends string>(
  env: NodeJS.ProcessEnv,
  key: string,
  allowed: readonly T[],
): T | undefined {
  const v = env[key];
  if (v === undefined || v === "") return undefined;
  if (!allowed.includes(v as T)) throw new ConfigError(`${key}=${v}: expected one of ${allowed.join(", ")}`);
  return v as T;
}

/** Resolves the effective config for a repository: its config file over the environment over defaults. */
export function loadConfig(
  repoDir: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): EffectiveConfig {
  const configFile = repoDir ? findConfigFile(repoDir) : undefined;
  const file: ConfigFile = configFile ? readConfigFile(configFile) : {};
  const sources: EffectiveConfig["sources"] = {};
  const pick = <T>(key: string, fromFile: T | undefined, fromEnv: T | undefined, fallback: T): T => {
    if (fromFile !== undefined) {
      sources[key] = "file";
      return fromFile;
    }
    if (fromEnv !== undefined) {
      sources[key] = "env";
      return fromEnv;
    }
    sources[key] = "default";
    return fallback;
  };
  const opt = <T>(key: string, fromFile: T | undefined, fromEnv: T | undefined): T | undefined =>
    pick<T | undefined>(key, fromFile, fromEnv, undefined);
  const s = (k: string) => (env[k] === "" ? undefined : env[k]);

  return {
    engine: pick("engine", file.engine, s("TASKSGODZILLA_DEFAULT_ENGINE"), BUILT_IN_DEFAULTS.engine),
    models: {
      plan: opt("models.plan", file.models?.plan, s("TASKSGODZILLA_PLAN_MODEL")),
      exec: opt("models.exec", file.models?.exec, s("TASKSGODZILLA_EXEC_MODEL")),
      qa: opt("models.qa", file.models?.qa, s("TASKSGODZILLA_QA_MODEL")),
    },
    sandbox: opt(
      "sandbox",
      file.sandbox,
      envEnum(env, "TASKSGODZILLA_SANDBOX", ["read-only", "workspace-write", "full-access"]),
    ),
    qa: {
      policy: pick(
        "qa.policy",
        file.qa?.policy,
        envEnum(env, "TASKSGODZILLA_QA_POLICY", ["skip", "light", "full"]),
        BUILT_IN_DEFAULTS.qaPolicy,
      ),
      engine: opt("qa.engine", file.qa?.engine, s("TASKSGODZILLA_QA_ENGINE")),
      prompt: opt("qa.prompt", file.qa?.prompt, s("TASKSGODZILLA_QA_PROMPT")),
      checks: pick(
        "qa.checks",
        file.qa?.checks,
        s("TASKSGODZILLA_QA_CHECKS")
          ?.split("&&")
          .map((c) => c.trim())
          .filter(Boolean),
        [],
      ),
      requireChanges: pick(
        "qa.require_changes",
        file.qa?.require_changes,
        envBool(env, "TASKSGODZILLA_QA_REQUIRE_CHANGES"),
        false,
      ),
    },
    budgets: {
      mode: pick(
        "budgets.mode",
        file.budgets?.mode,
        envEnum(env, "TASKSGODZILLA_TOKEN_BUDGET_MODE", ["strict", "warn", "off"]),
        BUILT_IN_DEFAULTS.budgetMode,
      ),
      maxTokensPerStep: opt(
        "budgets.max_tokens_per_step",
        file.budgets?.max_tokens_per_step,
        envNumber(env, "TASKSGODZILLA_MAX_TOKENS_PER_STEP", POSITIVE_COUNT),
      ),
      maxTokensPerProtocol: opt(
        "budgets.max_tokens_per_protocol",
        file.budgets?.max_tokens_per_protocol,
        envNumber(env, "TASKSGODZILLA_MAX_TOKENS_PER_PROTOCOL", POSITIVE_COUNT),
      ),
      maxTokensPerProject: opt(
        "budgets.max_tokens_per_project",
        file.budgets?.max_tokens_per_project,
        envNumber(env, "TASKSGODZILLA_MAX_TOKENS_PER_PROJECT", POSITIVE_COUNT),
      ),
      maxUsdPerStep: opt(
        "budgets.max_usd_per_step",
        file.budgets?.max_usd_per_step,
        envNumber(env, "TASKSGODZILLA_MAX_USD_PER_STEP", USD),
      ),
      maxUsdPerProtocol: opt(
        "budgets.max_usd_per_protocol",
        file.budgets?.max_usd_per_protocol,
        envNumber(env, "TASKSGODZILLA_MAX_USD_PER_PROTOCOL", USD),
      ),
      maxUsdPerProject: opt(
        "budgets.max_usd_per_project",
        file.budgets?.max_usd_per_project,
        envNumber(env, "TASKSGODZILLA_MAX_USD_PER_PROJECT", USD),
      ),
      maxUsdPerProjectPerDay: opt(
        "budgets.max_usd_per_project_per_day",
        file.budgets?.max_usd_per_project_per_day,
        envNumber(env, "TASKSGODZILLA_MAX_USD_PER_PROJECT_PER_DAY", USD),
      ),
      allowUnknownCost: pick(
        "budgets.allow_unknown_cost",
        file.budgets?.allow_unknown_cost,
        envBool(env, "TASKSGODZILLA_ALLOW_UNKNOWN_COST"),
        false,
      ),
      timeZone: pick("budgets.time_zone", file.budgets?.time_zone, envTimeZone(env), "UTC"),
    },
    prices: priceSettings(file, configFile, env),
    telemetry: telemetrySettings(file.telemetry, env),
    notifications: file.notifications ?? { webhooks: [] },
    timeoutSeconds: pick(
      "timeout_seconds",
      file.timeout_seconds,
      envNumber(env, "TASKSGODZILLA_TIMEOUT_SECONDS", { integer: false, positive: true }),
      BUILT_IN_DEFAULTS.timeoutSeconds,
    ),
    idleTimeoutSeconds: pick(
      "idle_timeout_seconds",
      file.idle_timeout_seconds,
      envNumber(env, "TASKSGODZILLA_IDLE_TIMEOUT_SECONDS", { integer: false, positive: false }),
      BUILT_IN_DEFAULTS.idleTimeoutSeconds,
    ),
    maxInlineTriggerDepth: pick(
      "max_inline_trigger_depth",
      file.max_inline_trigger_depth,
      envNumber(env, "TASKSGODZILLA_MAX_INLINE_TRIGGER_DEPTH", COUNT),
      BUILT_IN_DEFAULTS.maxInlineTriggerDepth,
    ),
    loopRestore: pick(
      "loop_restore",
      file.loop_restore,
      envEnum(env, "TASKSGODZILLA_LOOP_RESTORE", ["restore", "keep"]),
      BUILT_IN_DEFAULTS.loopRestore,
    ),
    engineRetries: pick(
      "engine_retries",
      file.engine_retries,
      envNumber(env, "TASKSGODZILLA_ENGINE_RETRIES", COUNT),
      BUILT_IN_DEFAULTS.engineRetries,
    ),
    maxOutputBytes: pick(
      "max_output_bytes",
      file.max_output_bytes,
      envNumber(env, "TASKSGODZILLA_MAX_OUTPUT_BYTES", POSITIVE_COUNT),
      BUILT_IN_DEFAULTS.maxOutputBytes,
    ),
    engines: engineSettings(file.engines ?? {}, repoDir, env),
    engineHomeRoot: engineHomeRoot(repoDir, env),
    dataDir: dataDir(env),
    sources,
    configFile,
  };
}

function envTimeZone(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.TASKSGODZILLA_BUDGET_TIME_ZONE;
  if (v === undefined || v === "") return undefined;
  if (!isTimeZone(v))
    throw new ConfigError(
      `TASKSGODZILLA_BUDGET_TIME_ZONE=${v}: not a time zone name (e.g. UTC, Europe/Paris)`,
    );
  return v;
}

/**
 * Price tables over the shipped one: the user's (TASKSGODZILLA_PRICES_FILE, relative to the working
 * directory), then the project's (`prices.file`, relative to the repository), then inline prices.
 */
function priceSettings(
  file: ConfigFile,
  configFile: string | undefined,
  env: NodeJS.ProcessEnv,
): PriceSettings {
  const files: string[] = [];
  if (env.TASKSGODZILLA_PRICES_FILE) files.push(resolve(env.TASKSGODZILLA_PRICES_FILE));
  if (file.prices?.file) files.push(resolve(configFile ? dirname(configFile) : ".", file.prices.file));
  return { files, models: file.prices?.models ?? {} };
}

function envBool(env: NodeJS.ProcessEnv, key: string): boolean | undefined {
  const v = env[key]?.toLowerCase();
  if (v === undefined || v === "") return undefined;
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new ConfigError(`${key}=${env[key]}: expected true or false`);
}

/**
 * The project's stored per-role models (`default_models`, set through the API) fill in what the
 * project's config file leaves open: step spec > config file > stored project defaults > env > built-in.
 */
export function withProjectDefaults(
  config: EffectiveConfig,
  defaultModels: Record<string, unknown>,
): EffectiveConfig {
  const models = { ...config.models };
  const sources = { ...config.sources };
  for (const role of ["plan", "exec", "qa"] as const) {
    const stored = defaultModels[role];
    if (typeof stored === "string" && stored && sources[`models.${role}`] !== "file") {
      models[role] = stored;
      sources[`models.${role}`] = "project";
    }
  }
  return { ...config, models, sources };
}
