/**
 * The JSON of the read views (run list, situation, timeline, transcript, diff): snake_case shapes of
 * the services' answers. Like api-shapes.ts, the zod schemas document the API and, in tests, check
 * every reply.
 */
import { z } from "zod";
import { RUN_ACTIONS, STEP_ACTIONS } from "../services/action-rules.js";
import type { RunList } from "../services/run-list.js";
import type { RunSituation } from "../services/run-situation.js";
import type {
  AttemptTimeline,
  PlanningTimeline,
  RunTimeline,
  StepTimeline,
  TimelineUsage,
} from "../services/run-timeline.js";
import type { RunDiff } from "../services/step-diff.js";
import type { Transcript, TranscriptEntry } from "../services/step-transcript.js";
import { PROTOCOL_STATUSES, STEP_STATUSES } from "../store/status.js";
import { named, ProtocolRunOut } from "./api-shapes.js";

const Time = z.string().nullable();

export const RunListItemOut = named(
  "RunListItem",
  ProtocolRunOut.extend({ project_name: z.string().describe("The name of the run's project.") }),
);

export const RunListOut = named(
  "RunList",
  z.object({
    runs: z.array(RunListItemOut).describe("Newest first."),
    total: z.number().int().describe("Runs matching the filters, across every page."),
    next_cursor: z
      .number()
      .int()
      .nullable()
      .describe("Pass as `cursor` for the next (older) page; null on the last page."),
  }),
);

export const NextActionOut = named(
  "NextAction",
  z.object({
    action: z
      .enum([...RUN_ACTIONS, ...STEP_ACTIONS])
      .nullable()
      .describe(
        "The API action that does it (a step action on `step`), one `allowed_actions` lists; null when only the CLI does it.",
      ),
    step: z.object({ id: z.number().int(), name: z.string() }).nullable(),
    command: z.string().describe("The exact CLI command, e.g. `tgz run 3`."),
    label: z.string(),
  }),
);

export const RunSituationOut = named(
  "RunSituation",
  z.object({
    status: z.enum(PROTOCOL_STATUSES),
    headline: z.string().describe('One line to read first, e.g. "Blocked: Step build failed (exec_failed)".'),
    reason: z
      .string()
      .nullable()
      .describe("The stop's reason code: exec_failed, budget_exceeded, interrupted, …"),
    message: z.string().nullable().describe("The message of the event that stopped the run."),
    since: Time,
    step: z
      .object({ id: z.number().int(), name: z.string(), status: z.enum(STEP_STATUSES) })
      .nullable()
      .describe("The step the run stopped on (or runs now)."),
    error: z.string().nullable().describe("What went wrong in that step: engine error, QA reason, …"),
    check: z
      .object({ name: z.string(), exit_code: z.number().int().nullable(), output: z.string() })
      .nullable()
      .describe("The QA check that failed, with the end of its output."),
    next: z.array(NextActionOut).describe("What to do next, first the likeliest."),
    pr: z.object({ url: z.string(), number: z.number().int().nullable() }).nullable(),
  }),
);

export const ProtocolRunDetailOut = named(
  "ProtocolRunDetail",
  ProtocolRunOut.extend({
    project_name: z.string(),
    situation: RunSituationOut,
    pr_url: z.string().nullable().describe("The PR/MR the run opened (pr_opened), if any."),
  }),
);

export const TimelineUsageOut = named(
  "TimelineUsage",
  z.object({
    total: z.number().int(),
    input: z.number().int(),
    output: z.number().int(),
    calls: z.number().int(),
    estimated: z.boolean().describe("Some call's tokens were estimated."),
    cost_usd: z
      .number()
      .nullable()
      .optional()
      .describe("Present when the calls' usage was priced; null when none could be."),
    cost_partial: z.boolean().optional().describe("Some call had no price: cost_usd counts the others."),
    unknown_cost_models: z.array(z.string()).optional(),
  }),
);

const QaOut = z.object({
  policy: z.string().nullable(),
  verdict: z.string().describe("pass, fail, error or skipped."),
  reason: z.string().nullable(),
  started_at: Time,
  ended_at: z.string(),
  duration_ms: z.number().nullable(),
  failed_checks: z.array(
    z.object({ name: z.string(), detail: z.string(), exit_code: z.number().int().nullable() }),
  ),
});

const AttemptOut = z.object({
  attempt: z.number().int(),
  started_at: z.string(),
  ended_at: Time,
  duration_ms: z.number().nullable().describe("Start to the end of its last phase (QA included)."),
  engine_ms: z.number().nullable().describe("The engine call's own time."),
  outcome: z.string().describe("running, needs_qa, completed, failed, interrupted, approved."),
  engine_id: z.string().nullable(),
  model: z.string().nullable(),
  error: z.string().nullable(),
  qa: QaOut.nullable(),
  usage: TimelineUsageOut,
});

export const StepTimelineOut = named(
  "StepTimeline",
  z.object({
    step_run_id: z.number().int(),
    step_name: z.string(),
    step_index: z.number().int(),
    status: z.enum(STEP_STATUSES),
    attempts: z.array(AttemptOut),
    loops: z.number().int().describe("Times a loop policy of this step sent the run back."),
    retries: z.number().int().describe("Times the step was retried by hand."),
    engine_retries: z.number().int().describe("Engine calls retried after a rate limit or server error."),
    started_at: Time,
    ended_at: Time,
    duration_ms: z.number().nullable(),
    usage: TimelineUsageOut,
  }),
);

export const RunTimelineOut = named(
  "RunTimeline",
  z.object({
    protocol_run_id: z.number().int(),
    started_at: Time,
    ended_at: Time,
    duration_ms: z.number().nullable(),
    planning: z
      .object({
        started_at: z.string(),
        ended_at: Time,
        duration_ms: z.number().nullable(),
        outcome: z.enum(["planning", "completed", "failed"]),
        engine_id: z.string().nullable(),
        model: z.string().nullable(),
        usage: TimelineUsageOut,
      })
      .nullable(),
    steps: z.array(StepTimelineOut).describe("In step order."),
    usage: TimelineUsageOut.describe("Planning and every step, as their events report it."),
  }),
);

const EntryOut = z
  .object({
    kind: z.enum([
      "started",
      "message",
      "tool",
      "tool_output",
      "stderr",
      "usage",
      "final",
      "error",
      "result",
      "other",
    ]),
  })
  .catchall(z.unknown())
  .describe(
    "One transcript entry: message {text}, tool {name, detail: its arguments}, tool_output {name, text, is_error}, stderr {text}, usage {input, output, cached_input, estimated, model}, final {text}, error {error_kind, message}, result {ok, exit_code, duration_ms, error, truncated_bytes}, started {session_id, pid}, other {text}.",
  );

export const TranscriptOut = named(
  "Transcript",
  z.object({
    protocol_run_id: z.number().int(),
    step_run_id: z.number().int().nullable().describe("Null: the run's planning calls."),
    calls: z.array(
      z.object({
        file: z.string().describe("The transcript's file name in <protocol folder>/logs."),
        phase: z.enum(["exec", "qa", "plan"]),
        attempt: z.number().int(),
        call: z.number().int().describe("2 and up: an engine retry or QA's repair retry."),
        rerun: z.boolean().describe("QA run again by hand on an earlier attempt's outputs."),
        truncated_bytes: z.number().int(),
        entries: z.array(EntryOut),
      }),
    ),
    note: z.string().nullable().describe("Why there is nothing to show, when there is nothing."),
  }),
);

export const DiffOut = named(
  "Diff",
  z.object({
    protocol_run_id: z.number().int(),
    step_run_id: z.number().int().nullable().describe("Null: the whole run."),
    from: z.string().describe("The commit it starts from."),
    to: z.string().nullable().describe("The checkpoint it ends at; null: the working tree now."),
    files: z.array(z.string()),
    patch: z.string().describe("Unified diff (git diff); empty when nothing changed."),
  }),
);

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export const usageOut = (u: TimelineUsage): z.infer<typeof TimelineUsageOut> => ({
  total: u.total,
  input: u.input,
  output: u.output,
  calls: u.calls,
  estimated: u.estimated,
  ...(u.costUsd !== undefined ? { cost_usd: u.costUsd } : {}),
  ...(u.costPartial !== undefined ? { cost_partial: u.costPartial } : {}),
  ...(u.unknownCostModels !== undefined ? { unknown_cost_models: u.unknownCostModels } : {}),
});

export const situationOut = (s: RunSituation): z.infer<typeof RunSituationOut> => ({
  status: s.status,
  headline: s.headline,
  reason: s.reason,
  message: s.message,
  since: s.since,
  step: s.step,
  error: s.error,
  check: s.check && { name: s.check.name, exit_code: s.check.exitCode, output: s.check.output },
  next: s.next,
  pr: s.pr,
});

const attemptOut = (a: AttemptTimeline) => ({
  attempt: a.attempt,
  started_at: a.startedAt,
  ended_at: a.endedAt,
  duration_ms: a.durationMs,
  engine_ms: a.engineMs,
  outcome: a.outcome,
  engine_id: a.engineId,
  model: a.model,
  error: a.error,
  qa: a.qa && {
    policy: a.qa.policy,
    verdict: a.qa.verdict,
    reason: a.qa.reason,
    started_at: a.qa.startedAt,
    ended_at: a.qa.endedAt,
    duration_ms: a.qa.durationMs,
    failed_checks: a.qa.failedChecks.map((c) => ({ name: c.name, detail: c.detail, exit_code: c.exitCode })),
  },
  usage: usageOut(a.usage),
});

const stepTimelineOut = (s: StepTimeline): z.infer<typeof StepTimelineOut> => ({
  step_run_id: s.stepRunId,
  step_name: s.stepName,
  step_index: s.stepIndex,
  status: s.status,
  attempts: s.attempts.map(attemptOut),
  loops: s.loops,
  retries: s.retries,
  engine_retries: s.engineRetries,
  started_at: s.startedAt,
  ended_at: s.endedAt,
  duration_ms: s.durationMs,
  usage: usageOut(s.usage),
});

const planningOut = (p: PlanningTimeline) => ({
  started_at: p.startedAt,
  ended_at: p.endedAt,
  duration_ms: p.durationMs,
  outcome: p.outcome,
  engine_id: p.engineId,
  model: p.model,
  usage: usageOut(p.usage),
});

export const timelineOut = (t: RunTimeline): z.infer<typeof RunTimelineOut> => ({
  protocol_run_id: t.runId,
  started_at: t.startedAt,
  ended_at: t.endedAt,
  duration_ms: t.durationMs,
  planning: t.planning && planningOut(t.planning),
  steps: t.steps.map(stepTimelineOut),
  usage: usageOut(t.usage),
});

const entryOut = (e: TranscriptEntry) =>
  Object.fromEntries(Object.entries(e).map(([k, v]) => [k === "errorKind" ? "error_kind" : snake(k), v])) as {
    kind: TranscriptEntry["kind"];
  };

export const transcriptOut = (
  runId: number,
  stepRunId: number | null,
  t: Transcript,
): z.infer<typeof TranscriptOut> => ({
  protocol_run_id: runId,
  step_run_id: stepRunId,
  calls: t.calls.map((c) => ({
    file: c.file,
    phase: c.phase,
    attempt: c.attempt,
    call: c.call,
    rerun: c.rerun,
    truncated_bytes: c.truncatedBytes,
    entries: c.entries.map(entryOut),
  })),
  note: t.note,
});

export const diffOut = (runId: number, stepRunId: number | null, d: RunDiff): z.infer<typeof DiffOut> => ({
  protocol_run_id: runId,
  step_run_id: stepRunId,
  from: d.from,
  to: d.to,
  files: d.files,
  patch: d.patch,
});

export type RunListOutput = z.infer<typeof RunListOut>;
export const runListOut = (list: RunList, runs: z.infer<typeof ProtocolRunOut>[]): RunListOutput => ({
  runs: runs.map((r, i) => ({ ...r, project_name: list.items[i]!.projectName })),
  total: list.total,
  next_cursor: list.nextCursor,
});
