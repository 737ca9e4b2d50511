/**
 * Where a run stands and what a person does next: why it is blocked, failed or paused (from its
 * events: the reason and message that stopped it, the step that failed, the failing check's output),
 * and the next actions, each as the API's action name (only ones `allowed_actions` lists: no rule is
 * copied here) and as the exact `tgz` command. The API's run detail, the console and `tgz status`
 * show it.
 */
import { tail } from "../shared/text.js";
import { EVENT } from "../store/event-types.js";
import type { Event, Json, ProtocolRun, StepRun, Store } from "../store/types.js";
import { actionsAllowedNow, failedStep, type RunAction, type StepAction } from "./action-rules.js";
import { runPrLink } from "./run-pr-link.js";

/** How much of a failing check's output is kept: its end, where the error usually is. */
const OUTPUT_TAIL = 2000;
/** The events looked through for the cause: the newest ones are enough. */
const LOOKBACK = 500;

export interface FailingCheck {
  name: string;
  /** Null when the check reported none (older runs, a check that could not start). */
  exitCode: number | null;
  /** The end of what the check printed. */
  output: string;
}

export interface NextAction {
  /** The API action (a run action, or a step action with `step`); null when only the CLI does it. */
  action: RunAction | StepAction | null;
  /** The step a step action is for. */
  step: { id: number; name: string } | null;
  /** The exact command: `tgz run 3`, `tgz approve 3 build`, … */
  command: string;
  /** What it does, in a few words. */
  label: string;
}

export interface RunSituation {
  status: ProtocolRun["status"];
  /** One line a person reads first, e.g. "Blocked: Step build failed (exec_failed)". */
  headline: string;
  /** The machine reason of the stop (`exec_failed`, `budget_exceeded`, `interrupted`, …). */
  reason: string | null;
  /** The message of the event that stopped the run. */
  message: string | null;
  /** When it stopped (that event's time). */
  since: string | null;
  /** The step the run stopped on. */
  step: { id: number; name: string; status: StepRun["status"] } | null;
  /** What went wrong in that step: its engine error, QA reason or validation error. */
  error: string | null;
  check: FailingCheck | null;
  next: NextAction[];
  pr: { url: string; number: number | null } | null;
}

const STOP_EVENTS: Partial<Record<ProtocolRun["status"], string[]>> = {
  blocked: [EVENT.protocolBlocked, EVENT.planningFailed, EVENT.jobFailed],
  failed: [EVENT.planningFailed, EVENT.stepFailed, EVENT.jobFailed, EVENT.protocolBlocked],
  paused: [EVENT.protocolPaused],
  cancelled: [EVENT.protocolCancelled],
};

/** Events about a step that say what went wrong with it, newest wins. */
const STEP_PROBLEMS: string[] = [
  EVENT.stepFailed,
  EVENT.engineError,
  EVENT.engineUnavailable,
  EVENT.qaVerdict,
  EVENT.budgetExceeded,
  EVENT.specValidationError,
  EVENT.loopLimitReached,
  EVENT.outputRefused,
];

const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

/** The first check that failed in a `qa_verdict`, with the end of its output. */
function failingCheck(verdict: Event | undefined): FailingCheck | null {
  if (!verdict || verdict.metadata.verdict === "pass") return null;
  const checks = Array.isArray(verdict.metadata.checks) ? (verdict.metadata.checks as Json[]) : [];
  const failed = checks.find((c) => c.ok === false);
  if (!failed) return null;
  const exit = failed.exit_code ?? failed.exitCode;
  return {
    name: String(failed.name ?? "check"),
    exitCode: typeof exit === "number" ? exit : null,
    output: tail(String(failed.detail ?? ""), OUTPUT_TAIL),
  };
}

/** An engine's problems (engine_unavailable) or the event's message. */
function problemText(e: Event): string {
  const problems = Array.isArray(e.metadata.problems) ? (e.metadata.problems as Json[]) : [];
  if (problems.length > 0)
    return problems
      .map((p) => `${String(p.message ?? "")}${p.fix ? ` (fix: ${String(p.fix)})` : ""}`)
      .join("; ");
  const errors = Array.isArray(e.metadata.errors) ? (e.metadata.errors as Json[]) : [];
  if (errors.length > 0)
    return errors.map((x) => `${String(x.pointer ?? "")}: ${String(x.message ?? "")}`).join("; ");
  return str(e.metadata.error) ?? str((e.metadata.error as Json | undefined)?.message) ?? e.message;
}

const HEADLINE: Record<string, string> = {
  pending: "Pending",
  planning: "Planning",
  planned: "Planned: ready to start",
  running: "Running",
  paused: "Paused",
  blocked: "Blocked",
  failed: "Failed",
  cancelled: "Cancelled",
  completed: "Completed",
};

export async function runSituation(store: Store, run: ProtocolRun): Promise<RunSituation> {
  const [allowed, steps, events, pr] = await Promise.all([
    actionsAllowedNow(store, run),
    store.listStepRuns(run.id),
    store.listEvents({ protocolRunId: run.id, newestFirst: true, limit: LOOKBACK }),
    runPrLink(store, run.id),
  ]);
  const stop = events.find((e) => STOP_EVENTS[run.status]?.includes(e.eventType));
  const named = str(stop?.metadata.step);
  const step =
    run.status === "blocked" || run.status === "failed"
      ? (named && steps.find((s) => s.stepName === named)) ||
        (stop?.stepRunId ? steps.find((s) => s.id === stop.stepRunId) : undefined) ||
        failedStep(steps)
      : run.status === "running"
        ? steps.find((s) => s.status === "running" || s.status === "needs_qa")
        : run.status === "paused" && named
          ? steps.find((s) => s.stepName === named)
          : undefined;
  // what went wrong in the step's latest attempt (events after its last start)
  const lastStart = step && events.find((e) => e.stepRunId === step.id && e.eventType === EVENT.stepStarted);
  const attemptEvents = step
    ? events.filter((e) => e.stepRunId === step.id && (!lastStart || e.id >= lastStart.id))
    : [];
  const problem =
    run.status === "blocked" || run.status === "failed"
      ? attemptEvents.find((e) => STEP_PROBLEMS.includes(e.eventType))
      : undefined;
  const planningProblem =
    !step && stop?.eventType !== EVENT.planningFailed && (run.status === "blocked" || run.status === "failed")
      ? events.find((e) => e.eventType === EVENT.planningFailed && e.id <= (stop?.id ?? Infinity))
      : undefined;
  const errorEvent =
    problem ?? planningProblem ?? (stop?.eventType === EVENT.planningFailed ? stop : undefined);
  const reason = str(stop?.metadata.reason);
  const message = stop?.message ?? null;
  return {
    status: run.status,
    headline: `${HEADLINE[run.status] ?? run.status}${
      message && ["blocked", "failed", "paused", "cancelled"].includes(run.status) ? `: ${message}` : ""
    }${run.status === "running" && step ? `: step ${step.stepName}` : ""}`,
    reason,
    message,
    since: stop?.createdAt ?? null,
    step: step ? { id: step.id, name: step.stepName, status: step.status } : null,
    error: errorEvent ? problemText(errorEvent) : null,
    check: failingCheck(attemptEvents.find((e) => e.eventType === EVENT.qaVerdict)),
    next: nextActions(run, steps, allowed, step, pr !== null),
    pr: pr && { url: pr.url, number: pr.number },
  };
}

/** A run action's exact CLI command (each does what the API action does, here and now). */
export const RUN_ACTION_COMMANDS: Record<RunAction, (run: number) => string> = {
  start: (r) => `tgz start ${r}`,
  pause: (r) => `tgz pause ${r}`,
  resume: (r) => `tgz resume ${r}`,
  cancel: (r) => `tgz cancel ${r}`,
  run_next_step: (r) => `tgz next ${r}`,
  retry_latest: (r) => `tgz retry ${r}`,
  open_pr: (r) => `tgz pr ${r}`,
};

export const STEP_ACTION_COMMANDS: Record<StepAction, (run: number, step: string) => string> = {
  run: (r, s) => `tgz step ${r} ${s}`,
  run_qa: (r, s) => `tgz qa ${r} ${s}`,
  approve: (r, s) => `tgz approve ${r} ${s}`,
};

/** Step names are ids a spec chose: quoted for the shell when they are not plain. */
const shellWord = (s: string) => (/^[A-Za-z0-9._:/@%+=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

function nextActions(
  run: ProtocolRun,
  steps: StepRun[],
  allowed: { run: RunAction[]; steps: Map<number, StepAction[]> },
  stuck: StepRun | undefined,
  hasPr: boolean,
): NextAction[] {
  const out: NextAction[] = [];
  const can = (a: RunAction) => allowed.run.includes(a);
  const runStep = (action: RunAction | null, command: string, label: string) =>
    out.push({ action, step: null, command, label });
  const forStep = (s: StepRun, action: StepAction, label: string) => {
    if (allowed.steps.get(s.id)?.includes(action))
      out.push({
        action,
        step: { id: s.id, name: s.stepName },
        command: STEP_ACTION_COMMANDS[action](run.id, shellWord(s.stepName)),
        label,
      });
  };
  const planned = run.templateConfig.protocol_spec !== undefined;
  const id = run.id;
  // steps waiting for a person (an approval gate's awaiting_approval) come first, whatever the run's status
  for (const s of steps.filter((x) => x.status === ("awaiting_approval" as StepRun["status"])))
    forStep(s, "approve", `approve step ${s.stepName}`);
  switch (run.status) {
    case "pending":
      if (!planned && can("start")) runStep("start", `tgz plan --run-id ${id}`, "plan the run from its task");
      else if (can("start")) runStep("start", RUN_ACTION_COMMANDS.start(id), "start the run");
      break;
    case "planned":
      if (can("start")) runStep("start", RUN_ACTION_COMMANDS.start(id), "start the run");
      break;
    case "paused":
      if (can("resume")) runStep("resume", `tgz run ${id}`, "continue the run");
      break;
    case "blocked":
    case "failed":
      if (!planned) {
        runStep(null, `tgz plan --run-id ${id}`, "plan the run again");
        break;
      }
      if (can("retry_latest")) runStep("retry_latest", `tgz run ${id}`, "retry the failed step and continue");
      else if (can("run_next_step")) runStep("run_next_step", `tgz run ${id}`, "continue the run");
      if (stuck) forStep(stuck, "approve", `accept step ${stuck.stepName} as it is`);
      break;
    case "completed":
      if (can("open_pr") && !hasPr) {
        runStep(null, `tgz diff ${id}`, "review what the run changed");
        runStep("open_pr", RUN_ACTION_COMMANDS.open_pr(id), "open a pull request");
      }
      break;
    default:
      break;
  }
  return out;
}
