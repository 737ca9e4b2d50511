/**
 * Applying a CI result (a GitHub or GitLab delivery reduced to a CiEvent) to its run, as the original
 * did it, in one transaction with the `ci_webhook` event that records it. A delivery the provider
 * sends again (same delivery id) is recorded once: the id is stored in the same transaction. The step concerned is the latest changed of the run's steps that have run
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
import { execFileSync } from "node:child_process";
import { isAbsolute } from "node:path";
import { NotFoundError } from "../shared/errors.js";
import { EVENT } from "../store/event-types.js";
import { canMoveProtocol, canMoveStep } from "../store/status.js";
import type { Project, ProtocolRun, StepRun, Store, StoreOps } from "../store/types.js";
import { latestStep } from "./action-rules.js";
import type { ActionOutcome } from "./dispatch.js";
import { completeIfDone, queueQa } from "./run-moves.js";

export type CiOutcome = "success" | "running" | "failure" | "merged" | "other";

/** One CI result, whichever provider sent it. */
export interface CiEvent {
  provider: "github" | "gitlab";
  /** X-GitHub-Event or GitLab's object_kind. */
  kind: string;
  branch: string | null;
  status: string;
  outcome: CiOutcome;
  /** Ways the payload names its repository (full name, clone URLs), for matching a project. */
  repository: string[];
  pr_number: number | null;
  sha: string | null;
}

export interface CiSettings {
  /** CI success: QA the latest step again (TASKSGODZILLA_AUTO_QA_ON_CI); otherwise it is completed. */
  autoQa: boolean;
  /** CI failure: fail the latest step and block the run (default; TASKSGODZILLA_CI_ON_FAILURE=none turns it off). */
  blockOnFailure: boolean;
}

/** What came of a delivery; also the `status` label of the webhook metrics. */
export type CiAction =
  | "duplicate"
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

export interface CiDelivery {
  ci: CiEvent;
  /** The run named in the delivery, when the branch does not name it. */
  runId?: number | undefined;
  /** The provider's id of this delivery (X-GitHub-Delivery, X-Gitlab-Event-UUID), when it sent one. */
  deliveryId?: string | undefined;
}

/**
 * The use case: finds the delivery's run and applies the result. A delivery seen before (by its id)
 * changes nothing and answers `duplicate`, also when two copies arrive at once: the id is recorded
 * under the write lock, in the transaction that applies the result.
 */
export async function applyCiResult(
  store: Store,
  delivery: CiDelivery,
  settings: CiSettings,
): Promise<CiApplied> {
  const { ci, deliveryId } = delivery;
  const seen = deliveryId ? await store.findWebhookDelivery(ci.provider, deliveryId) : undefined;
  if (seen) return duplicate(await store.getProtocolRun(seen.protocolRunId), deliveryId!);
  const run = await findCiRun(store, ci, delivery.runId);
  return store.transaction(async (tx) => {
    if (
      deliveryId &&
      !(await tx.recordWebhookDelivery({ provider: ci.provider, deliveryId, protocolRunId: run.id }))
    )
      return duplicate(await tx.getProtocolRun(run.id), deliveryId);
    return applyCi(tx, run.id, ci, settings);
  });
}

const duplicate = (run: ProtocolRun, deliveryId: string): CiApplied => ({
  run,
  action: "duplicate",
  message: `delivery ${deliveryId} was received before; nothing done`,
});

async function applyCi(tx: StoreOps, runId: number, ci: CiEvent, settings: CiSettings): Promise<CiApplied> {
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

/** `owner/repo` (the last two path segments), lowercased, of a URL, scp-style remote or full name. */
function repoKey(url: string): string | null {
  const path = url
    .trim()
    .replace(/^[a-z+]+:\/\/[^/]+\//i, "")
    .replace(/^[^@/]+@[^:]+:/, "")
    .replace(/\.git$/i, "")
    .replace(/\/+$/, "");
  const parts = path.split("/").filter(Boolean);
  return parts.length >= 2 ? parts.slice(-2).join("/").toLowerCase() : null;
}

/** The project's repository: its git URL, or the origin remote of a local checkout. */
function projectRepoKey(project: Project): string | null {
  const local = project.localPath ?? (isAbsolute(project.gitUrl) ? project.gitUrl : null);
  if (!local) return repoKey(project.gitUrl);
  try {
    const origin = execFileSync("git", ["-C", local, "remote", "get-url", "origin"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2000,
    });
    return repoKey(origin);
  } catch {
    return null;
  }
}

/**
 * Which run a CI event is about: the one named explicitly, else the run whose protocol name is the
 * branch. Names repeat across projects, so a run of the project whose repository the payload names
 * wins; among equals the newest run (the one CI just built).
 */
async function findCiRun(store: Store, ci: CiEvent, explicitRunId: number | undefined): Promise<ProtocolRun> {
  if (explicitRunId !== undefined) return store.getProtocolRun(explicitRunId);
  const ref = (ci.branch ?? "").replace(/^refs\/(heads|tags)\//, "");
  const names = new Set([ref, ref.split("/").pop() ?? ""].filter(Boolean));
  const candidates = (await store.listProtocolRuns())
    .filter((r) => names.has(r.protocolName))
    .sort((a, b) => b.id - a.id);
  if (candidates.length === 0) throw new NotFoundError("protocol run for branch", ref || "(none)");
  const wanted = new Set(ci.repository.map(repoKey).filter((k): k is string => k !== null));
  if (wanted.size > 0 && new Set(candidates.map((r) => r.projectId)).size > 1) {
    for (const run of candidates) {
      const key = projectRepoKey(await store.getProject(run.projectId));
      if (key && wanted.has(key)) return run;
    }
  }
  return candidates[0]!;
}
