/** Each named user action (as the API and the CLI name them) and its use case. */
import type { RunAction, StepAction } from "./action-rules.js";
import type { ActionOutcome } from "./dispatch.js";
import { cancelRun, openPr, pauseRun, resumeRun, retryLatest, startRun } from "./run-actions.js";
import type { ActionContext } from "./run-moves.js";
import { approveStep, runNextStep, runQa, runStep } from "./step-actions.js";

export const RUN_USE_CASES: Record<RunAction, (ctx: ActionContext, runId: number) => Promise<ActionOutcome>> =
  {
    start: startRun,
    pause: pauseRun,
    resume: resumeRun,
    cancel: cancelRun,
    run_next_step: runNextStep,
    retry_latest: retryLatest,
    open_pr: openPr,
  };

export const STEP_USE_CASES: Record<
  StepAction,
  (ctx: ActionContext, stepRunId: number) => Promise<ActionOutcome>
> = {
  run: runStep,
  run_qa: runQa,
  approve: approveStep,
};
