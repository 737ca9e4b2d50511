/**
 * `tgz start|pause|resume|cancel|retry|next|qa|approve RUN [STEP]`: the API's actions, through the
 * same use cases (the same rules, refusals and messages). The work an action implies runs here, now,
 * with the live view, by the job handler a worker would run for it; with `--queue` it is queued for
 * `tgz server` / `tgz worker` instead.
 */
import { actionsAllowedNow, type RunAction, type StepAction } from "../../services/action-rules.js";
import { type ActionOutcome, dispatchOutcome } from "../../services/dispatch.js";
import type { ActionContext } from "../../services/run-moves.js";
import { RUN_USE_CASES, STEP_USE_CASES } from "../../services/user-actions.js";
import { NotFoundError } from "../../shared/errors.js";
import type { AppContext } from "../app-context.js";
import { runLine, stepsTable } from "../format.js";
import { localDispatch, withQueueDispatch } from "../local-work.js";
import { parseRunId } from "../run-id.js";

export interface ActionCommandOptions {
  /** Queue the work for the workers instead of doing it here. */
  queue?: boolean;
  json?: boolean;
}

/** How work done here can leave a run that says something went wrong (exit 1). */
const STOPPED_SHORT = new Set(["blocked", "failed", "cancelled"]);

/** A step of the run by its id in the spec (the STEP column of `tgz steps`). */
async function stepRunId(app: AppContext, runId: number, step: string): Promise<number> {
  const found = (await app.store.listStepRuns(runId)).find((s) => s.stepName === step);
  if (!found) throw new NotFoundError(`step of run ${runId}`, step);
  return found.id;
}

export async function actionCommand(
  app: AppContext,
  action: { run: RunAction } | { step: StepAction },
  runArg: string,
  stepArg: string | undefined,
  opts: ActionCommandOptions,
): Promise<number> {
  const runId = parseRunId(runArg);
  const ctx: ActionContext = { store: app.store, source: "cli" };
  const outcome: ActionOutcome =
    "run" in action
      ? await RUN_USE_CASES[action.run](ctx, runId)
      : await STEP_USE_CASES[action.step](ctx, await stepRunId(app, runId, stepArg ?? ""));
  const done = opts.queue
    ? await withQueueDispatch(app, (dispatch) => dispatchOutcome(outcome, dispatch))
    : await dispatchOutcome(outcome, localDispatch(app, opts));
  const ranHere = outcome.job !== undefined && !opts.queue;
  const run = await app.store.getProtocolRun(runId);
  const steps = await app.store.listStepRuns(runId);
  const allowed = await actionsAllowedNow(app.store, run);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          run_id: run.id,
          protocol_name: run.protocolName,
          status: run.status,
          message: done.message,
          ...(done.step ? { step: done.step.stepName } : {}),
          ...(opts.queue && done.job ? { job: done.job } : {}),
          allowed_actions: allowed.run,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(
      `${ranHere ? `\n${stepsTable(steps)}\n` : `${done.message}${done.job ? ` (job ${done.job.id})` : ""}\n`}${runLine(run)}\n`,
    );
  }
  // the action was done; the work it ran here may have stopped the run short
  return ranHere && STOPPED_SHORT.has(run.status) ? 1 : 0;
}
