/**
 * ProtocolSpec / StepSpec: the one source of truth for the wire format (snake_case). TypeScript types
 * and the published JSON Schema (`schemas/protocol-spec.schema.json`) are both derived from it.
 * Unknown keys are kept (the original format allowed them), known keys are typed.
 */
import { z } from "zod";

export const QA_POLICIES = ["skip", "light", "full"] as const;
export const BUDGET_MODES = ["strict", "warn", "off"] as const;
export const SANDBOX_MODES = ["read-only", "workspace-write", "full-access"] as const;
export const STEP_TYPES = ["setup", "work", "qa"] as const;

/** A condition as the original wrote it: a token, or an object whose on/reason/event/when/name holds it. */
const ConditionEntry = z.union([
  z.string(),
  z.looseObject({
    on: z.string().nullish(),
    reason: z.string().nullish(),
    event: z.string().nullish(),
    when: z.string().nullish(),
    name: z.string().nullish(),
  }),
]);
const conditionList = z.union([ConditionEntry, z.array(ConditionEntry)]);
/** A whole number, also written as a string of digits as the original's runtime accepted it. */
const wholeNumber = z.union([z.number().int(), z.string().regex(/^-?\d+$/, "must be a whole number")]);

export const BudgetSpec = z
  .object({
    max_tokens: z
      .number()
      .int()
      .positive()
      .nullish()
      .describe("Token limit (input + output, cumulative). Unset or null: no limit."),
    max_usd: z
      .number()
      .positive()
      .nullish()
      .describe("Money limit in USD (priced usage, cumulative). Unset or null: no limit."),
    mode: z.enum(BUDGET_MODES).nullish().describe("strict refuses/stops, warn records only, off ignores."),
  })
  .describe("A token and money budget.");

export const PolicySpec = z
  .looseObject({
    behavior: z
      .unknown()
      .optional()
      .describe('"loop" or "trigger". Anything else (or nothing) is kept but never applied.'),
    id: z.string().nullish().describe("Policy id; loop counters are kept per id. Alias: module_id."),
    module_id: z.string().nullish().describe("Alias of id (original format)."),
    action: z.string().nullish(),
    conditions: conditionList
      .nullish()
      .describe(
        "When the policy applies: qa_failed, failure (execution failed), exec_failed, success, qa_passed, " +
          "exec_completed, or directive:<action>. Empty: loops apply on any failure, triggers on success.",
      ),
    condition: conditionList.nullish().describe("Alias of conditions (original format)."),
    step_back: wholeNumber
      .nullish()
      .describe("Loop: go back this many steps (0 or less re-runs only the current step). Default 1."),
    target_step: z.string().nullish().describe("Loop: go back to this step id instead of step_back."),
    max_iterations: wholeNumber
      .nullish()
      .describe("Loop: hard limit on iterations, persisted across restarts. Default 3 when unset."),
    skip: z.array(z.string()).nullish().describe("Loop: step ids inside the loop range that are not re-run."),
    skip_steps: z
      .array(z.number().int())
      .nullish()
      .describe("Alias of skip by step index (original format)."),
    trigger_step: z
      .string()
      .nullish()
      .describe("Trigger: the step id to run. Aliases: trigger_agent_id, target_agent_id."),
    trigger_agent_id: z.string().nullish(),
    target_agent_id: z.string().nullish(),
    inline: z
      .boolean()
      .nullish()
      .describe("Trigger: run the target at once (default true) or leave it queued as pending."),
  })
  .describe("A loop or trigger policy.");

export const QaSpec = z
  .looseObject({
    policy: z.enum(QA_POLICIES).nullish().describe("skip | light | full. Unset: the project default."),
    reason: z.string().nullish().describe("Why QA is skipped (recorded on qa_skipped)."),
    prompt: z
      .string()
      .nullish()
      .describe("QA prompt file for full QA (default: the shipped quality-validator)."),
    model: z.string().nullish(),
    engine_id: z.string().nullish(),
    inputs: z.record(z.string(), z.unknown()).nullish(),
    checks: z.array(z.string()).nullish().describe("Shell commands that must exit 0 (light and full QA)."),
    require_changes: z
      .boolean()
      .nullish()
      .describe("Light QA: fail when the step changed nothing in the worktree."),
  })
  .describe("How the step is checked.");

export const OutputsSpec = z
  .strictObject({
    protocol: z
      .string()
      .nullish()
      .describe("Where the final message is written, relative to the protocol folder."),
    aux: z
      .record(z.string(), z.string())
      .nullish()
      .describe("Extra copies for named consumers: {consumer: path}."),
  })
  .describe("Declared outputs.");

export const DirectiveSpec = z
  .strictObject({
    file: z
      .string()
      .min(1)
      .describe("Directive file, relative to the worktree (reset before the step, read after)."),
    alt_files: z.array(z.string()).nullish().describe("Other names an agent may write the directive to."),
  })
  .describe(
    "An agent directive file: the agent writes {action: continue|loop|stop|checkpoint|pause|error|trigger, " +
      "reason?, trigger_step?} to steer the run. loop and trigger become the conditions directive:loop / directive:trigger.",
  );

export const RetrySpec = z
  .strictObject({
    engine_errors: z
      .number()
      .int()
      .min(0)
      .nullish()
      .describe(
        "Retries of an engine call that failed retryably (rate limit, server error, stall). Default: engine_retries.",
      ),
    crashes: z
      .number()
      .int()
      .min(0)
      .nullish()
      .describe(
        "How often a step whose runner died mid-step (killed worker, crash) is run again before it fails. Default 2.",
      ),
  })
  .describe("How often the step is tried again after failures that are not its own.");

export const FilePlaceholder = z
  .strictObject({
    file: z.string().min(1).describe("File (or dir/*.ext glob) whose content is inlined when the step runs."),
    from: z.enum(["workspace", "protocol"]).nullish().describe("Base folder of `file` (default workspace)."),
    optional: z
      .boolean()
      .nullish()
      .describe("A missing file gives an empty string instead of failing the step."),
  })
  .describe("A placeholder whose value is a file's content at run time.");

export const StepSpec = z
  .looseObject({
    id: z.string().min(1).describe("Unique step id."),
    name: z.string().nullish(),
    description: z.string().nullish(),
    engine_id: z.string().nullish().describe("Engine id; unset: the project default engine."),
    model: z.string().nullish(),
    prompt_ref: z
      .string()
      .nullish()
      .describe("Prompt file: protocol folder, then worktree, then prompt library."),
    inputs: z.record(z.string(), z.unknown()).nullish().describe("Engine inputs and template values."),
    outputs: OutputsSpec.nullish(),
    step_type: z.enum(STEP_TYPES).nullish(),
    policies: z.array(PolicySpec).nullish(),
    qa: QaSpec.nullish(),
    order: z.number().int().nullish(),
    metadata: z.record(z.string(), z.unknown()).nullish(),
    timeout_seconds: z
      .number()
      .min(0)
      .nullish()
      .describe("Wall-clock limit of one engine call, in seconds; 0 or unset: the project default."),
    exec_timeout_seconds: z.number().min(0).nullish().describe("Alias of timeout_seconds (original format)."),
    idle_timeout_seconds: z
      .number()
      .min(0)
      .nullish()
      .describe(
        "Longest silence of one engine call, in seconds: with no output for this long (no event from an agent " +
          "CLI, no byte from a command) its process group is killed and the call fails as `stalled`, retried " +
          "per retry.engine_errors. 0: no limit; unset: the project's idle_timeout_seconds.",
      ),
    budget: BudgetSpec.nullish().describe("Per-step token budget."),
    sandbox: z.enum(SANDBOX_MODES).nullish().describe("Sandbox / permission mode for agent engines."),
    reasoning_effort: z.string().nullish().describe("Reasoning effort for engines that support it."),
    execute_once: z
      .boolean()
      .nullish()
      .describe("Once completed, the step is not run again by a loop or a resume."),
    directive: DirectiveSpec.nullish(),
    retry: RetrySpec.nullish(),
    agent_id: z
      .string()
      .nullish()
      .describe("The agent this step runs; a trigger or directive may name the step by it."),
    trigger_only: z
      .boolean()
      .nullish()
      .describe(
        "The step runs only when a trigger or directive names it: never in sequence, and the protocol " +
          "can complete without it.",
      ),
  })
  .describe("One step of a protocol.");

export const ProtocolSpec = z
  .looseObject({
    version: z.union([z.string(), z.number()]).nullish(),
    steps: z.array(StepSpec).min(1).describe("Steps in execution order."),
    placeholders: z
      .record(z.string(), z.unknown())
      .nullish()
      .describe(
        "Values for {{name}} in prompts and inputs: a literal, or {file, from?, optional?} read at run time.",
      ),
    template: z.unknown().optional(),
    metadata: z.record(z.string(), z.unknown()).nullish(),
    budget: BudgetSpec.nullish().describe("Per-protocol token budget."),
  })
  .describe("A TasksGodzilla protocol: the plan every step of a run is executed from.");

export type ProtocolSpec = z.infer<typeof ProtocolSpec>;
export type StepSpec = z.infer<typeof StepSpec>;
export type FilePlaceholder = z.infer<typeof FilePlaceholder>;
export type DirectiveSpec = z.infer<typeof DirectiveSpec>;
export type PolicySpec = z.infer<typeof PolicySpec>;
export type QaSpec = z.infer<typeof QaSpec>;
export type BudgetSpec = z.infer<typeof BudgetSpec>;
export type RetrySpec = z.infer<typeof RetrySpec>;
export type QaPolicy = (typeof QA_POLICIES)[number];
export type BudgetMode = (typeof BUDGET_MODES)[number];
