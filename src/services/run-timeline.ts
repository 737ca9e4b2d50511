/**
 * A run's timeline, from its event ledger: per step each attempt with its start, end and duration,
 * the engine's time, the QA verdict (and the failing check), the tokens (and their cost when the
 * usage carries one); the loops a step sent the run back by, the retries and engine retries; and the
 * planning phase of a planned run. The API's `GET /protocols/{id}/timeline`, the console's run page
 * and `tgz status` read it.
 */
import { EVENT } from "../store/event-types.js";
import type { Event, Json, ProtocolRun, StepRun, Store } from "../store/types.js";

/** Tokens of one or more calls as the events report them, with their cost when it was priced. */
export interface TimelineUsage {
  total: number;
  input: number;
  output: number;
  calls: number;
  /** Some call's tokens were estimated (the engine reported none). */
  estimated: boolean;
  /** The calls' cost in USD, when their usage carried one; null when some call could not be priced. */
  costUsd?: number | null;
  /** Some call's cost is missing (a model without a price): `costUsd` counts the others. */
  costPartial?: boolean;
  unknownCostModels?: string[];
}

export interface QaOutcome {
  policy: string | null;
  verdict: string;
  reason: string | null;
  startedAt: string | null;
  endedAt: string;
  durationMs: number | null;
  /** The checks that failed, with the end of their output. */
  failedChecks: { name: string; detail: string; exitCode: number | null }[];
}

export interface AttemptTimeline {
  attempt: number;
  startedAt: string;
  endedAt: string | null;
  /** Wall time from the start to the end of its last phase (QA included); null while under way. */
  durationMs: number | null;
  /** The engine's own time. */
  engineMs: number | null;
  /** completed, failed, interrupted, running, needs_qa */
  outcome: string;
  engineId: string | null;
  model: string | null;
  error: string | null;
  qa: QaOutcome | null;
  usage: TimelineUsage;
}

export interface StepTimeline {
  stepRunId: number;
  stepName: string;
  stepIndex: number;
  status: StepRun["status"];
  attempts: AttemptTimeline[];
  /** Times a loop policy of this step sent the run back. */
  loops: number;
  /** Times the step was retried by hand (retry, resume of a failed step). */
  retries: number;
  /** Engine calls retried after a rate limit or server error. */
  engineRetries: number;
  startedAt: string | null;
  endedAt: string | null;
  /** Sum of its attempts' durations. */
  durationMs: number | null;
  usage: TimelineUsage;
}

export interface PlanningTimeline {
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  outcome: "planning" | "completed" | "failed";
  engineId: string | null;
  model: string | null;
  usage: TimelineUsage;
}

export interface RunTimeline {
  runId: number;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  planning: PlanningTimeline | null;
  steps: StepTimeline[];
  usage: TimelineUsage;
}

const EVENT_PAGE = 1000;
/** The events that start a run's work: the runner's start, or an action that queued it (start, one step). */
const RUN_START: string[] = [
  EVENT.protocolStarted,
  EVENT.startEnqueued,
  EVENT.stepEnqueued,
  EVENT.protocolResumed,
  EVENT.stepStarted,
];
const END_OF_RUN: string[] = [EVENT.protocolCompleted, EVENT.protocolBlocked, EVENT.protocolCancelled];

const ms = (from: string, to: string) => Math.max(0, Date.parse(to) - Date.parse(from));
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

const noUsage = (): TimelineUsage => ({ total: 0, input: 0, output: 0, calls: 0, estimated: false });

/** Adds an event's `usage` (one call, or a list of QA calls) to `into`. */
function addUsage(into: TimelineUsage, usage: unknown): void {
  const calls = (Array.isArray(usage) ? usage : [usage]).filter(
    (u): u is Json => typeof u === "object" && u !== null && typeof (u as Json).total === "number",
  );
  for (const u of calls) {
    // planning_completed sums its calls (a repair retry is a second one)
    into.calls += num(u.calls) ?? 1;
    into.total += u.total as number;
    into.input += num(u.input) ?? 0;
    into.output += num(u.output) ?? 0;
    if (u.estimated === true) into.estimated = true;
    // cost fields appear once usage is priced; a run from before then has none and shows tokens only
    if ("cost_usd" in u) {
      const cost = num(u.cost_usd);
      if (cost === null) into.costPartial = true;
      else into.costUsd = (into.costUsd ?? 0) + cost;
      if (u.cost_partial === true) into.costPartial = true;
      const unknown = Array.isArray(u.unknown_cost_models) ? u.unknown_cost_models.map(String) : [];
      if (unknown.length)
        into.unknownCostModels = [...new Set([...(into.unknownCostModels ?? []), ...unknown])];
    }
  }
}

function mergeUsage(into: TimelineUsage, from: TimelineUsage): void {
  into.total += from.total;
  into.input += from.input;
  into.output += from.output;
  into.calls += from.calls;
  into.estimated ||= from.estimated;
  if (from.costUsd !== undefined) {
    if (from.costUsd === null) into.costPartial = true;
    else into.costUsd = (into.costUsd ?? 0) + from.costUsd;
  }
  if (from.costPartial) into.costPartial = true;
  if (from.unknownCostModels?.length)
    into.unknownCostModels = [...new Set([...(into.unknownCostModels ?? []), ...from.unknownCostModels])];
}

/** Every event of the run, oldest first, read page by page. */
async function allRunEvents(store: Store, runId: number): Promise<Event[]> {
  const out: Event[] = [];
  for (;;) {
    const page = await store.listEvents({
      protocolRunId: runId,
      afterId: out.at(-1)?.id ?? 0,
      limit: EVENT_PAGE,
    });
    out.push(...page);
    if (page.length < EVENT_PAGE) return out;
  }
}

function failedChecks(e: Event): QaOutcome["failedChecks"] {
  const checks = Array.isArray(e.metadata.checks) ? (e.metadata.checks as Json[]) : [];
  return checks
    .filter((c) => c.ok === false)
    .map((c) => ({
      name: String(c.name ?? "check"),
      detail: String(c.detail ?? "").slice(-2000),
      exitCode: num(c.exit_code ?? c.exitCode),
    }));
}

const errorOf = (e: Event): string =>
  str((e.metadata.error as Json | undefined)?.message) ?? str(e.metadata.error) ?? e.message;

function stepTimeline(step: StepRun, events: Event[]): StepTimeline {
  const attempts: AttemptTimeline[] = [];
  let loops = 0;
  let retries = 0;
  let engineRetries = 0;
  let qaStart: Event | undefined;
  const current = () => attempts.at(-1);
  const end = (a: AttemptTimeline, at: string) => {
    a.endedAt = at;
    a.durationMs = ms(a.startedAt, at);
  };
  for (const e of events) {
    const a = current();
    switch (e.eventType) {
      case EVENT.stepStarted:
        attempts.push({
          attempt: num(e.metadata.attempt) ?? attempts.length + 1,
          startedAt: e.createdAt,
          endedAt: null,
          durationMs: null,
          engineMs: null,
          outcome: "running",
          engineId: str(e.metadata.engine_id),
          model: str(e.metadata.model),
          error: null,
          qa: null,
          usage: noUsage(),
        });
        break;
      case EVENT.stepCompleted:
        if (!a) break;
        a.engineMs = num(e.metadata.duration_ms);
        a.model = str(e.metadata.model) ?? a.model;
        a.outcome = "needs_qa";
        addUsage(a.usage, e.metadata.usage);
        end(a, e.createdAt);
        break;
      case EVENT.stepFailed:
      case EVENT.stepInterrupted:
        if (!a) break;
        a.engineMs ??= num(e.metadata.duration_ms);
        a.outcome = e.eventType === EVENT.stepFailed ? "failed" : "interrupted";
        if (e.eventType === EVENT.stepFailed) a.error ??= errorOf(e);
        // the engine's usage was already counted from its engine_error
        if (a.usage.calls === 0) addUsage(a.usage, e.metadata.usage);
        end(a, e.createdAt);
        break;
      case EVENT.engineError:
        if (!a) break;
        a.error = errorOf(e);
        a.engineMs = num(e.metadata.duration_ms);
        addUsage(a.usage, e.metadata.usage);
        break;
      case EVENT.engineRetry:
        engineRetries++;
        if (a) addUsage(a.usage, e.metadata.usage);
        break;
      case EVENT.qaStarted:
        qaStart = e;
        break;
      case EVENT.qaSkipped:
        if (!a) break;
        a.qa = {
          policy: "skip",
          verdict: "skipped",
          reason: str(e.metadata.reason),
          startedAt: null,
          endedAt: e.createdAt,
          durationMs: null,
          failedChecks: [],
        };
        a.outcome = "completed";
        end(a, e.createdAt);
        break;
      case EVENT.qaVerdict: {
        if (!a) break;
        const verdict = String(e.metadata.verdict ?? "error");
        a.qa = {
          policy: str(e.metadata.policy),
          verdict,
          reason: str(e.metadata.reason),
          startedAt: qaStart?.createdAt ?? null,
          endedAt: e.createdAt,
          durationMs: num(e.metadata.duration_ms) ?? (qaStart ? ms(qaStart.createdAt, e.createdAt) : null),
          failedChecks: failedChecks(e),
        };
        qaStart = undefined;
        addUsage(a.usage, e.metadata.usage);
        a.outcome = verdict === "pass" ? "completed" : "failed";
        end(a, e.createdAt);
        break;
      }
      case EVENT.manualApproval:
        if (a && a.outcome !== "completed") a.outcome = "approved";
        break;
      case EVENT.loopDecision:
        if (e.metadata.decision === "loop") loops++;
        break;
      case EVENT.stepRetry:
        retries++;
        break;
      default:
        break;
    }
  }
  const usage = noUsage();
  for (const a of attempts) mergeUsage(usage, a.usage);
  const ended = attempts.filter((a) => a.durationMs !== null);
  return {
    stepRunId: step.id,
    stepName: step.stepName,
    stepIndex: step.stepIndex,
    status: step.status,
    attempts,
    loops,
    retries,
    engineRetries,
    startedAt: attempts[0]?.startedAt ?? null,
    endedAt: attempts.at(-1)?.endedAt ?? null,
    durationMs: ended.length ? ended.reduce((n, a) => n + (a.durationMs ?? 0), 0) : null,
    usage,
  };
}

function planningTimeline(events: Event[]): PlanningTimeline | null {
  let out: PlanningTimeline | null = null;
  // every planning attempt's calls count
  const usage = noUsage();
  for (const e of events) {
    if (e.eventType === EVENT.planningStarted)
      out = {
        startedAt: e.createdAt,
        endedAt: null,
        durationMs: null,
        outcome: "planning",
        engineId: str(e.metadata.engine_id),
        model: str(e.metadata.model),
        usage,
      };
    else if (out && (e.eventType === EVENT.planningCompleted || e.eventType === EVENT.planningFailed)) {
      out.endedAt = e.createdAt;
      out.durationMs = num(e.metadata.duration_ms) ?? ms(out.startedAt, e.createdAt);
      out.outcome = e.eventType === EVENT.planningCompleted ? "completed" : "failed";
      addUsage(out.usage, e.metadata.usage);
    }
  }
  return out;
}

export async function runTimeline(store: Store, run: ProtocolRun): Promise<RunTimeline> {
  const [steps, events] = await Promise.all([store.listStepRuns(run.id), allRunEvents(store, run.id)]);
  const byStep = new Map<number, Event[]>();
  for (const e of events)
    if (e.stepRunId !== null) byStep.set(e.stepRunId, [...(byStep.get(e.stepRunId) ?? []), e]);
  const stepLines = [...steps]
    .sort((a, b) => a.stepIndex - b.stepIndex)
    .map((s) => stepTimeline(s, byStep.get(s.id) ?? []));
  const planning = planningTimeline(events);
  const usage = noUsage();
  if (planning) mergeUsage(usage, planning.usage);
  for (const s of stepLines) mergeUsage(usage, s.usage);
  // the run's own time: from its first start (planning, when it was planned and never started)
  const started =
    events.find((e) => RUN_START.includes(e.eventType))?.createdAt ?? planning?.startedAt ?? null;
  const last = [...events].reverse().find((e) => END_OF_RUN.includes(e.eventType));
  const ended =
    last && ["completed", "blocked", "cancelled", "failed"].includes(run.status) ? last.createdAt : null;
  return {
    runId: run.id,
    startedAt: started,
    endedAt: ended,
    durationMs: started && ended ? ms(started, ended) : null,
    planning,
    steps: stepLines,
    usage,
  };
}
