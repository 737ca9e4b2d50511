/** The project config file (`tasksgodzilla.config.{json,yaml,yml}`), snake_case like the spec. */
import { z } from "zod";
import { isTimeZone } from "../cost/budget-day.js";
import { PricesConfig } from "../cost/price-schema.js";
import { NotificationsConfig } from "../notify/notify-config.js";
import { BUDGET_MODES, QA_POLICIES, SANDBOX_MODES } from "../spec/schema.js";
import { TelemetryConfig } from "../telemetry/telemetry-settings.js";

export const EngineSettingsFile = z.strictObject({
  binary: z.string().optional().describe("Binary path or name (default: found on PATH)."),
  args: z.array(z.string()).optional().describe("Extra arguments added to every call."),
  env: z.record(z.string(), z.string()).optional().describe("Extra environment for the engine process."),
  base_url: z.string().optional().describe("Model server base URL (Claude, Gemini, opencode)."),
  config_overrides: z.array(z.string()).optional().describe("Codex `-c key=value` overrides."),
  provider: z.string().optional().describe("Model provider name (Codex, opencode)."),
  home: z
    .enum(["isolated", "user"])
    .optional()
    .describe("Config home: isolated per project (default) or the user's."),
  seed_from_user: z.boolean().optional().describe("Copy the user's config into the isolated home."),
});

export const ConfigFile = z.strictObject({
  engine: z.string().optional().describe("Default engine id for steps that name none."),
  models: z
    .strictObject({ plan: z.string().optional(), exec: z.string().optional(), qa: z.string().optional() })
    .optional(),
  sandbox: z.enum(SANDBOX_MODES).optional(),
  qa: z
    .strictObject({
      policy: z.enum(QA_POLICIES).optional(),
      engine: z.string().optional(),
      prompt: z.string().optional(),
      checks: z.array(z.string()).optional().describe("Commands every light/full QA runs in the worktree."),
      require_changes: z.boolean().optional(),
    })
    .optional(),
  budgets: z
    .strictObject({
      mode: z.enum(BUDGET_MODES).optional(),
      max_tokens_per_step: z.number().int().positive().optional(),
      max_tokens_per_protocol: z.number().int().positive().optional(),
      max_tokens_per_project: z.number().int().positive().optional(),
      max_usd_per_step: z.number().positive().optional().describe("USD a step's calls may cost in all."),
      max_usd_per_protocol: z.number().positive().optional().describe("USD a run's calls may cost in all."),
      max_usd_per_project: z
        .number()
        .positive()
        .optional()
        .describe("USD a project's calls may cost in all."),
      max_usd_per_project_per_day: z
        .number()
        .positive()
        .optional()
        .describe("USD a project's calls may cost in one day (see time_zone), across runs and workers."),
      allow_unknown_cost: z
        .boolean()
        .optional()
        .describe("Let calls of models without a price run under a strict money budget, counted as $0."),
      time_zone: z
        .string()
        .refine(isTimeZone, { message: "not a time zone name (e.g. UTC, Europe/Paris)" })
        .optional()
        .describe("The time zone of the daily cap's day (default UTC)."),
    })
    .optional(),
  prices: PricesConfig.optional(),
  telemetry: TelemetryConfig.optional(),
  notifications: NotificationsConfig.optional(),
  timeout_seconds: z.number().positive().optional(),
  idle_timeout_seconds: z
    .number()
    .min(0)
    .optional()
    .describe("Longest silence of an engine call before it is killed as stalled; 0: no limit."),
  max_inline_trigger_depth: z.number().int().min(0).optional(),
  max_output_bytes: z.number().int().positive().optional(),
  loop_restore: z
    .enum(["restore", "keep"])
    .optional()
    .describe("On a loop back, restore the worktree to the checkpoint before the target step, or keep it."),
  engine_retries: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Retries of an engine call that failed retryably (rate limit, server error, stall)."),
  engines: z.record(z.string(), EngineSettingsFile).optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;
export type EngineSettingsFile = z.infer<typeof EngineSettingsFile>;
