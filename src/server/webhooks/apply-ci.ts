/**
 * What a CI result does to its run, as the original did it, in one transaction with the `ci_webhook`
 * event that records it. The step concerned is the latest changed of the run's steps that have run
 * (a pending step has produced nothing for CI to judge).
 * - success: with auto-QA the step is QA'd again (needs_qa + a run_qa job, `qa_enqueued`); without, the
 *   step is completed ("CI passed") and a run whose steps are all done completes.
 * - running: recorded only (the runner owns `running`).
 * - failure: the step fails and the run is blocked ("CI failed; protocol blocked"); a paused run
 *   stays paused, a completed or cancelled one is left alone.
 * - a merged PR/MR completes the run (`pr_merged` / `mr_merged`).
 * While a step is running, the runner decides the run's course: success and failure are recorded
 * only. So is a result for a run none of whose steps has run yet.
 */
import { EVENT } from "../../store/event-types.js";
import { canMoveProtocol, canMoveStep } from "../../store/status.js";
import type { ProtocolRun, StepRun, StoreOps } from "../../store/types.js";
import { type ActionOutcome, completeIfDone, latestStep, queueQa } from "../run-actions.js";
import type { CiSettings } from "../server-context.js";
import type { CiEvent } from "./ci-events.js";

/** What came of a delivery; also the `status` label of the webhook metrics. */
export type CiAction =
  | "recorded"
  | "qa_enqueued"
  | "step_completed"
  | "completed"
  | "step_failed"
  | "blocked"
  | "ignored";

export interface CiApplied extends ActionOutcome {
  action: CiAction;
}

export async function applyCi(
  tx: StoreOps,
  runId: number,
  ci: CiEvent,
  settings: CiSettings,
): Promise<CiApplied> {
  const run = await tx.getProtocolRun(runId);
  const steps = await tx.listStepRuns(run.id);
  const step = latestStep(steps, (s) => s.status !== "pending");
  const busy = steps.some((s) => s.status === "running");
  const source = { source: "ci_webhook", provider: ci.provider };
  await tx.appendEvent({
    protocolRunId: run.id,
    stepRunId: step?.id ?? null,
    eventType: EVENT.ciWebhook,
    message: `${ci.provider} ${ci.kind}: ${ci.status || "?"} on ${ci.branch ?? "?"}`,
    metadata: { ...ci },
  });
  const recorded = (action: CiAction, message: string, r: ProtocolRun = run): CiApplied => ({
    run: r,
    step,
    action,
    message,
  });
  const closed = run.status === "completed" || run.status === "cancelled";

  if (ci.outcome === "merged") {
    if (!canMoveProtocol(run.status, "completed"))
      return recorded("ignored", `run is ${run.status}; the merge is recorded only`);
    const done = await tx.transitionProtocol(
      run.id,
      "completed",
      {
        eventType: ci.provider === "github" ? EVENT.prMerged : EVENT.mrMerged,
        message: `${ci.provider === "github" ? "PR" : "MR"} ${ci.pr_number ?? ""} merged; protocol completed`,
        metadata: { pr_number: ci.pr_number, ...source },
      },
      { expectedFrom: run.status },
    );
    return recorded("completed", "merged; run completed", done);
  }
  if (ci.outcome !== "success" && ci.outcome !== "failure")
    return recorded("recorded", ci.outcome === "running" ? "CI running; recorded" : "recorded");
  if (ci.outcome === "failure" && !settings.blockOnFailure)
    return recorded("recorded", "CI failed; recorded only");
  if (closed) return recorded("ignored", `run is ${run.status}; recorded only`);
  if (busy) return recorded("recorded", "a step is running and its runner decides; recorded only");
  if (!step) return recorded("recorded", "no step has run yet; recorded only");

  return ci.outcome === "success"
    ? passed(tx, run, step, settings, source, recorded)
    : failed(tx, run, step, source);
}

type Source = { source: string; provider: string };

async function passed(
  tx: StoreOps,
  run: ProtocolRun,
  step: StepRun,
  settings: CiSettings,
  source: Source,
  recorded: (action: CiAction, message: string) => CiApplied,
): Promise<CiApplied> {
  if (settings.autoQa) {
    if (run.status === "paused") return recorded("recorded", "run is paused; recorded only");
    if (!canMoveStep(step.status, "needs_qa") && step.status !== "needs_qa")
      return recorded("recorded", `step is ${step.status}; nothing to check`);
    const taken =
      run.status === "blocked" || run.status === "failed"
        ? await tx.transitionProtocol(
            run.id,
            "running",
            { eventType: EVENT.protocolResumed, message: "CI passed; QA queued", metadata: source },
            { expectedFrom: run.status },
          )
        : run;
    const qa = await queueQa(tx, step, "CI passed", source);
    return { run: taken, ...qa, action: "qa_enqueued", message: "QA queued" };
  }
  if (step.status === "completed") return { ...(await completed(tx, run)), step };
  if (!canMoveStep(step.status, "completed"))
    return recorded("recorded", `step is ${step.status}; recorded only`);
  const done = await tx.transitionStep(
    step.id,
    "completed",
    { eventType: EVENT.stepStatus, message: "CI passed", metadata: source },
    { expectedFrom: step.status },
  );
  return { ...(await completed(tx, run)), step: done };
}

async function failed(tx: StoreOps, run: ProtocolRun, step: StepRun, source: Source): Promise<CiApplied> {
  const stepAfter = canMoveStep(step.status, "failed")
    ? await tx.transitionStep(
        step.id,
        "failed",
        { eventType: EVENT.stepFailed, message: "CI failed", metadata: { reason: "ci_failed", ...source } },
        { expectedFrom: step.status },
      )
    : step;
  if (!canMoveProtocol(run.status, "blocked"))
    return { run, step: stepAfter, action: "step_failed", message: `CI failed; the run stays ${run.status}` };
  const blocked = await tx.transitionProtocol(
    run.id,
    "blocked",
    {
      eventType: EVENT.protocolBlocked,
      message: "CI failed; protocol blocked",
      metadata: { reason: "ci_failed", ...source },
    },
    { expectedFrom: run.status },
  );
  return { run: blocked, step: stepAfter, action: "blocked", message: "CI failed; run blocked" };
}

async function completed(tx: StoreOps, run: ProtocolRun): Promise<CiApplied> {
  const after = await completeIfDone(tx, run.id);
  return after.status === "completed"
    ? { run: after, action: "completed", message: "CI passed; run completed" }
    : { run: after, action: "step_completed", message: "CI passed; step completed" };
}
