/**
 * Which user actions a run's or a step's state allows: one pure rule per action, from the facts a
 * use case reads inside its transaction (the run, its steps, whether this machine has its checkout,
 * whether it has a branch of its own). The same rules refuse an action in its use case and list
 * the actions allowed now (`allowed_actions` in the API, `tgz status`, the console's buttons), so
 * no surface keeps its own copy of them.
 */
import { existsSync } from "node:fs";
import { dataDir } from "../config/data-paths.js";
import { protocolWorktreeOf, WorktreeGoneError } from "../git/run-worktree.js";
import { TasksGodzillaError } from "../shared/errors.js";
import type { Project, ProtocolRun, StepRun, StoreOps } from "../store/types.js";
import { projectWorkspace } from "./project-service.js";

export const RUN_ACTIONS = [
  "start",
  "pause",
  "resume",
  "cancel",
  "run_next_step",
  "retry_latest",
  "open_pr",
] as const;
export type RunAction = (typeof RUN_ACTIONS)[number];

/** Per-step actions; a step action is listed on the step it applies to. */
export const STEP_ACTIONS = ["run", "run_qa", "approve"] as const;
export type StepAction = (typeof STEP_ACTIONS)[number];

/** A user action the state does not allow; nothing was changed. The API answers 409, the CLI exits 1. */
export class ActionRefusedError extends TasksGodzillaError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a rule says: `undefined` is allowed; `done` succeeds with nothing to do; `refused` says why not. */
export type Verdict = undefined | { done: string } | { refused: ActionRefusedError };

/** What the rules look at, read in the use case's transaction. */
export interface RunFacts {
  run: ProtocolRun;
  steps: StepRun[];
  project: Project;
  /** Where the run's jobs work: its worktree, else the project's checkout; null when there is none. */
  workspace: string | null;
  /** The workspace exists on this machine. */
  checkout: boolean;
  /** The run has a branch and worktree of its own (made by planning), and the folder exists. */
  ownBranch: boolean;
  /** Its own worktree was removed (pruned). */
  worktreeGone: WorktreeGoneError | undefined;
}

export async function readFacts(
  tx: StoreOps,
  run: ProtocolRun,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunFacts> {
  const [steps, project] = await Promise.all([tx.listStepRuns(run.id), tx.getProject(run.projectId)]);
  const workspace = run.worktreePath ?? projectWorkspace(project);
  const own = protocolWorktreeOf(run, dataDir(env));
  const ownBranch = own !== null && existsSync(own.path);
  return {
    run,
    steps,
    project,
    workspace,
    checkout: workspace !== null && existsSync(workspace),
    ownBranch,
    worktreeGone: own && !ownBranch ? new WorktreeGoneError(run.id, own.path) : undefined,
  };
}

const refuse = (code: string, message: string): Verdict => ({
  refused: new ActionRefusedError(code, message),
});

/** Runs a person works on step by step; a running run advances by itself. */
const WORKABLE = ["planned", "paused", "blocked", "failed"];
/** Steps that can be run (again) by hand. */
const RUNNABLE_STEP = ["pending", "blocked", "failed"];

const hasSpec = (run: ProtocolRun) => run.templateConfig.protocol_spec !== undefined;

/** The checkout an action's job works in: refused when this machine has none. */
function needsCheckout(f: RunFacts): Verdict {
  if (f.checkout) return undefined;
  return refuse(
    "repo_missing",
    `project ${f.project.id} (${f.project.gitUrl}) has no local checkout${
      f.workspace ? ` at ${f.workspace}` : ""
    }; register it with local_path`,
  );
}

/** A run taken up by hand to work on one step: not while it runs, and only from a workable status. */
function takeUp(f: RunFacts, why: string): Verdict {
  const { run } = f;
  if (run.status === "running")
    return refuse(
      "conflict",
      `protocol run ${run.id} is running and advances by itself; pause it first to ${why}`,
    );
  if (!WORKABLE.includes(run.status))
    return refuse("conflict", `protocol run ${run.id} is ${run.status}; it cannot ${why}`);
  return undefined;
}

/** The step a CI result or `retry_latest` is about: the one changed last. */
export function latestStep(steps: StepRun[], filter: (s: StepRun) => boolean = () => true) {
  return steps.filter(filter).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id)[0];
}

export function nextRunnableStep(steps: StepRun[]): StepRun | undefined {
  return steps.filter((s) => RUNNABLE_STEP.includes(s.status)).sort((a, b) => a.stepIndex - b.stepIndex)[0];
}

export const failedStep = (steps: StepRun[]) =>
  latestStep(steps, (s) => s.status === "failed" || s.status === "blocked");

export function runActionRule(action: RunAction, f: RunFacts): Verdict {
  const { run } = f;
  switch (action) {
    case "start":
      if (run.status === "paused") return runActionRule("resume", f);
      if (run.status === "pending" && !hasSpec(run) && !run.description?.trim())
        return refuse(
          "conflict",
          `protocol run ${run.id} has no spec and no description to plan from; create it with a spec or a description`,
        );
      if (run.status !== "planned" && run.status !== "pending")
        return refuse(
          "conflict",
          `protocol run ${run.id} is ${run.status}; start needs a pending, planned or paused run`,
        );
      return needsCheckout(f);
    case "resume":
      if (run.status !== "paused")
        return refuse("conflict", `protocol run ${run.id} is ${run.status}, not paused`);
      return needsCheckout(f);
    case "pause":
      // the planner writes the spec and cannot be held halfway: a planning run is cancelled or waited for
      if (run.status === "planning")
        return refuse(
          "conflict",
          `protocol run ${run.id} is planning, which cannot be paused; pause it once it is planned, or cancel it`,
        );
      if (run.status !== "planned" && run.status !== "running")
        return refuse(
          "conflict",
          `protocol run ${run.id} is ${run.status}; pause needs a planned or running run`,
        );
      return undefined;
    case "cancel":
      if (run.status === "cancelled") return { done: "already cancelled" };
      if (run.status === "completed")
        return refuse("conflict", `protocol run ${run.id} is completed; there is nothing to cancel`);
      return undefined;
    case "run_next_step": {
      const next = nextRunnableStep(f.steps);
      if (!next)
        return refuse(
          "no_runnable_step",
          `protocol run ${run.id} has no pending, blocked or failed step to run`,
        );
      return stepActionRule("run", next, f);
    }
    case "retry_latest": {
      const latest = failedStep(f.steps);
      if (!latest)
        return refuse("no_failed_step", `protocol run ${run.id} has no failed or blocked step to retry`);
      return takeUp(f, `retry step ${latest.stepName}`) ?? needsCheckout(f);
    }
    case "open_pr":
      if (f.ownBranch) return undefined;
      if (f.worktreeGone) return refuse("worktree_gone", f.worktreeGone.message);
      return refuse(
        "no_branch",
        `run ${run.id} works in a checkout of yours, not on a branch of its own; plan it with \`tgz plan\` to get one`,
      );
  }
}

export function stepActionRule(action: StepAction, step: StepRun, f: RunFacts): Verdict {
  switch (action) {
    case "run":
      if (!RUNNABLE_STEP.includes(step.status))
        return refuse(
          "conflict",
          `step ${step.id} is ${step.status}; only a pending, blocked or failed step can run`,
        );
      return takeUp(f, `run step ${step.stepName}`) ?? needsCheckout(f);
    case "run_qa":
      if (step.status === "completed" || step.status === "cancelled" || step.status === "running")
        return refuse(
          "conflict",
          `step ${step.id} is ${step.status}; QA runs on a step that has run and is not done`,
        );
      if (step.status === "pending")
        return refuse("conflict", `step ${step.id} has not run yet; there is nothing for QA to check`);
      return takeUp(f, `check step ${step.stepName}`) ?? needsCheckout(f);
    case "approve":
      if (step.status === "completed") return { done: "already completed" };
      if (step.status === "running" || step.status === "cancelled")
        return refuse("conflict", `step ${step.id} is ${step.status}; it cannot be approved`);
      return undefined;
  }
}

/** The run actions that would be carried out now (not refused, and not already done). */
function allowedRunActions(f: RunFacts): RunAction[] {
  return RUN_ACTIONS.filter((a) => runActionRule(a, f) === undefined);
}

function allowedStepActions(step: StepRun, f: RunFacts): StepAction[] {
  return STEP_ACTIONS.filter((a) => stepActionRule(a, step, f) === undefined);
}

/** Throws the refusal; returns the message of an action already done, or undefined to go on. */
export function enforce(verdict: Verdict): string | undefined {
  if (verdict && "refused" in verdict) throw verdict.refused;
  return verdict?.done;
}

/** The actions allowed now on a run and on each of its steps (read outside any action). */
export async function actionsAllowedNow(
  tx: StoreOps,
  run: ProtocolRun,
): Promise<{ run: RunAction[]; steps: Map<number, StepAction[]> }> {
  const f = await readFacts(tx, run);
  return {
    run: allowedRunActions(f),
    steps: new Map(f.steps.map((s) => [s.id, allowedStepActions(s, f)])),
  };
}
