/**
 * The JSON the API returns: snake_case rows as the original API had them, never a secret. The zod
 * schemas are the documentation (OpenAPI components) and, in tests, are checked against every reply.
 */
import { z } from "zod";
import type { JobInfo, JobState } from "../queue/job-queue.js";
import { RUN_ACTIONS, type RunAction, STEP_ACTIONS, type StepAction } from "../services/action-rules.js";
import { ProtocolSpec, StepSpec } from "../spec/schema.js";
import { PROTOCOL_STATUSES, STEP_STATUSES } from "../store/status.js";
import type { Event, Project, ProtocolRun, StepRun } from "../store/types.js";

/** Schemas with an id here become named OpenAPI components. */
export const apiSchemas = z.registry<{ id: string }>();

export const named = <T extends z.ZodType>(id: string, schema: T): T => {
  apiSchemas.add(schema, { id });
  return schema;
};

named("ProtocolSpec", ProtocolSpec);
named("StepSpec", StepSpec);

const Json = z.record(z.string(), z.unknown());

export const ErrorOut = named(
  "Error",
  z.object({
    error: z.string().describe("Machine-readable code, e.g. invalid_request, not_found, conflict."),
    detail: z.string().describe("What was wrong, naming the field or the missing thing."),
    errors: z
      .array(z.object({ pointer: z.string(), message: z.string() }))
      .optional()
      .describe("`spec_invalid`: every reason the spec would block the run, by JSON pointer."),
    request_id: z.string(),
  }),
);

export const ProjectOut = named(
  "Project",
  z.object({
    id: z.number().int(),
    name: z.string(),
    git_url: z.string(),
    local_path: z.string().nullable(),
    base_branch: z.string(),
    ci_provider: z.string().nullable(),
    default_models: Json,
    secrets_set: z
      .array(z.string())
      .describe("Names of the project's stored secrets; their values are never returned."),
    created_at: z.string(),
    updated_at: z.string(),
  }),
);

export const GuardedProjectOut = named(
  "GuardedProject",
  z.object({
    id: z.number().int(),
    name: z.string(),
    guarded: z
      .literal(true)
      .describe("The project has an api_token and the request did not carry it as X-Project-Token."),
  }),
);

export const ProtocolRunOut = named(
  "ProtocolRun",
  z.object({
    id: z.number().int(),
    project_id: z.number().int(),
    protocol_name: z.string(),
    status: z.enum(PROTOCOL_STATUSES),
    base_branch: z.string(),
    worktree_path: z.string().nullable(),
    protocol_root: z.string().nullable(),
    description: z.string().nullable(),
    template_config: Json,
    template_source: Json.nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    spec_hash: z.string().nullable(),
    spec_validation_status: z.enum(["valid", "invalid", "missing"]).nullable(),
    spec_validated_at: z.string().nullable(),
    allowed_actions: z
      .array(z.enum(RUN_ACTIONS))
      .describe(
        "The protocol actions that would be carried out now, by the same rules the actions enforce; any other is refused (409).",
      ),
  }),
);

export const StepRunOut = named(
  "StepRun",
  z.object({
    id: z.number().int(),
    protocol_run_id: z.number().int(),
    step_index: z.number().int(),
    step_name: z.string(),
    step_type: z.string(),
    status: z.enum(STEP_STATUSES),
    retries: z.number().int(),
    model: z.string().nullable(),
    engine_id: z.string().nullable(),
    policy: z.array(Json),
    runtime_state: Json,
    summary: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    allowed_actions: z
      .array(z.enum(STEP_ACTIONS))
      .describe("The step actions that would be carried out now; any other is refused (409)."),
  }),
);

export const UsageOut = named(
  "Usage",
  z.object({
    input: z.number().int(),
    cached_input: z.number().int().describe("Part of `input` served from the provider's cache."),
    output: z.number().int(),
    reasoning: z.number().int().describe("Part of `output` spent on reasoning."),
    total: z.number().int().describe("Tokens charged: input + output."),
    calls: z.number().int().describe("Engine calls counted."),
    estimated_calls: z.number().int().describe("Calls whose engine reported no usage: tokens estimated."),
  }),
);

export const RunUsageOut = named(
  "RunUsage",
  z.object({
    protocol_run_id: z.number().int(),
    total: UsageOut,
    by_phase: z.object({ plan: UsageOut, exec: UsageOut, qa: UsageOut }),
    steps: z.array(
      z.object({
        step_run_id: z.number().int(),
        step_name: z.string(),
        status: z.enum(STEP_STATUSES),
        usage: UsageOut.describe("The step's own calls and its QA's, every attempt."),
      }),
    ),
  }),
);

export const EventOut = named(
  "Event",
  z.object({
    id: z.number().int().describe("Position in the ledger: the cursor for `after` and Last-Event-ID."),
    protocol_run_id: z.number().int(),
    step_run_id: z.number().int().nullable(),
    project_id: z.number().int(),
    event_type: z.string(),
    message: z.string(),
    metadata: Json.describe(
      "The event's details; also holds `spec_hash` (as the original's events did), unless the event sets its own.",
    ),
    spec_hash: z.string().nullable(),
    created_at: z.string(),
  }),
);

/** The original queue's four statuses, as `/queues` and `?status=` use them. */
export const ORIGINAL_JOB_STATUSES = ["queued", "started", "finished", "failed"] as const;
export type OriginalJobStatus = (typeof ORIGINAL_JOB_STATUSES)[number];

export const ORIGINAL_STATUS_STATES: Record<OriginalJobStatus, JobState[]> = {
  queued: ["waiting", "delayed"],
  started: ["active"],
  finished: ["completed"],
  failed: ["failed", "dead", "cancelled"],
};

const originalStatusOf = (state: JobState): OriginalJobStatus =>
  ORIGINAL_JOB_STATUSES.find((s) => ORIGINAL_STATUS_STATES[s].includes(state)) ?? "failed";

export const JobOut = named(
  "Job",
  z.object({
    id: z.string(),
    job_id: z.string().describe("Same as id (the original's name)."),
    kind: z.string(),
    job_type: z.string().describe("Same as kind (the original's name)."),
    queue: z
      .literal("default")
      .describe("The queue the job is in: always the one queue (the original's field)."),
    state: z.enum(["waiting", "delayed", "active", "completed", "failed", "dead", "cancelled"]),
    status: z.enum(ORIGINAL_JOB_STATUSES).describe("The state in the original's terms."),
    payload: Json,
    attempts: z.number().int(),
    max_attempts: z.number().int(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  }),
);

export const EnqueuedJob = named(
  "EnqueuedJob",
  z.object({
    id: z.string(),
    deduplicated: z.boolean().describe("True when the same work was already queued and this is that job."),
  }),
);

export const projectOut = (p: Project, secretKeys: string[]): z.infer<typeof ProjectOut> => ({
  id: p.id,
  name: p.name,
  git_url: p.gitUrl,
  local_path: p.localPath,
  base_branch: p.baseBranch,
  ci_provider: p.ciProvider,
  default_models: p.defaultModels,
  secrets_set: secretKeys,
  created_at: p.createdAt,
  updated_at: p.updatedAt,
});

export const protocolOut = (r: ProtocolRun, allowed: RunAction[]): z.infer<typeof ProtocolRunOut> => ({
  id: r.id,
  project_id: r.projectId,
  protocol_name: r.protocolName,
  status: r.status,
  base_branch: r.baseBranch,
  worktree_path: r.worktreePath,
  protocol_root: r.protocolRoot,
  description: r.description,
  template_config: r.templateConfig,
  template_source: r.templateSource,
  created_at: r.createdAt,
  updated_at: r.updatedAt,
  spec_hash: r.templateConfig.spec_meta?.spec_hash ?? null,
  spec_validation_status: r.templateConfig.spec_meta?.status ?? null,
  spec_validated_at: r.templateConfig.spec_meta?.validated_at ?? null,
  allowed_actions: allowed,
});

export const stepOut = (s: StepRun, allowed: StepAction[]): z.infer<typeof StepRunOut> => ({
  id: s.id,
  protocol_run_id: s.protocolRunId,
  step_index: s.stepIndex,
  step_name: s.stepName,
  step_type: s.stepType,
  status: s.status,
  retries: s.retries,
  model: s.model,
  engine_id: s.engineId,
  policy: s.policy,
  runtime_state: s.runtimeState,
  summary: s.summary,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
  allowed_actions: allowed,
});

export const eventOut = (e: Event): z.infer<typeof EventOut> => ({
  id: e.id,
  protocol_run_id: e.protocolRunId,
  step_run_id: e.stepRunId,
  project_id: e.projectId,
  event_type: e.eventType,
  message: e.message,
  metadata: { spec_hash: e.specHash, ...e.metadata },
  spec_hash: e.specHash,
  created_at: e.createdAt,
});

export const jobOut = (j: JobInfo): z.infer<typeof JobOut> => ({
  id: j.id,
  job_id: j.id,
  kind: j.kind,
  job_type: j.kind,
  queue: "default",
  state: j.state,
  status: originalStatusOf(j.state),
  payload: j.payload,
  attempts: j.attempts,
  max_attempts: j.maxAttempts,
  last_error: j.lastError,
  created_at: j.createdAt,
  updated_at: j.updatedAt,
});
