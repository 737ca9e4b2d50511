/** Runs and steps as the API serves them: every one with the actions allowed on it now. */
import { actionsAllowedNow } from "../services/action-rules.js";
import type { ActionDone } from "../services/dispatch.js";
import type { ProtocolRun, StepRun, Store } from "../store/types.js";
import { protocolOut, stepOut } from "./api-shapes.js";

export async function runReply(store: Store, run: ProtocolRun) {
  return protocolOut(run, (await actionsAllowedNow(store, run)).run);
}

export function runsReply(store: Store, runs: ProtocolRun[]) {
  return Promise.all(runs.map((r) => runReply(store, r)));
}

/** The run's steps (all of them, or the ones given), each with its allowed actions. */
export async function stepsReply(store: Store, run: ProtocolRun, only?: StepRun[]) {
  const allowed = await actionsAllowedNow(store, run);
  const steps = only ?? (await store.listStepRuns(run.id));
  return steps.map((s) => stepOut(s, allowed.steps.get(s.id) ?? []));
}

/**
 * An action's reply: the run and step after it, the job that does the rest (`job`, and its id as
 * the original's `job_id`), and what was done.
 */
export async function actionReply(store: Store, done: ActionDone) {
  const allowed = await actionsAllowedNow(store, done.run);
  return {
    protocol: protocolOut(done.run, allowed.run),
    ...(done.step ? { step: stepOut(done.step, allowed.steps.get(done.step.id) ?? []) } : {}),
    ...(done.job ? { job: done.job, job_id: done.job.id } : {}),
    message: done.message,
  };
}
