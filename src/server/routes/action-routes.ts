/**
 * Protocol and step actions, as the original API had them. Each checks the state it starts from and
 * makes its moves and events in one transaction (a 409 writes nothing), then queues its job.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { NotFoundError } from "../../shared/errors.js";
import { EVENT } from "../../store/event-types.js";
import type { ProtocolRun, StepRun, StoreOps } from "../../store/types.js";
import { ConflictError, QUEUE_UNAVAILABLE } from "../api-errors.js";
import { EnqueuedJob, ProtocolRunOut, protocolOut, StepRunOut, stepOut } from "../api-shapes.js";
import { requireProjectAccess } from "../auth.js";
import {
  type ActionDone,
  type ActionOutcome,
  completeIfDone,
  jobs,
  latestStep,
  perform,
  queueQa,
  requireRepo,
  takeUp,
} from "../run-actions.js";
import { Id, route, type ServerContext } from "../server-context.js";

export const PROTOCOL_ACTIONS = [
  "start",
  "pause",
  "resume",
  "cancel",
  "run_next_step",
  "retry_latest",
  "open_pr",
] as const;
export const STEP_ACTIONS = ["run", "run_qa", "approve"] as const;

const RUNNABLE_STEP = ["pending", "blocked", "failed"];

const ActionReply = z.object({
  protocol: ProtocolRunOut,
  step: StepRunOut.optional().describe("The step the action moved, for step actions and run_next_step."),
  job: EnqueuedJob.optional().describe("The job queued to do the work, when there is one."),
  message: z.string(),
});

const reply = (done: ActionDone) => ({
  protocol: protocolOut(done.run),
  ...(done.step ? { step: stepOut(done.step) } : {}),
  ...(done.job ? { job: done.job } : {}),
  message: done.message,
});

async function start(tx: StoreOps, run: ProtocolRun): Promise<ActionOutcome> {
  if (run.status === "paused") return resume(tx, run);
  if (run.status === "pending" && !run.templateConfig.protocol_spec) {
    if (!run.description?.trim())
      throw new ConflictError(
        `protocol run ${run.id} has no spec and no description to plan from; create it with a spec or a description`,
      );
    const repo = await requireRepo(tx, run);
    const planning = await tx.transitionProtocol(
      run.id,
      "planning",
      { eventType: EVENT.planningEnqueued, message: "Planning queued", metadata: { reason: "api" } },
      { expectedFrom: "pending" },
    );
    return { run: planning, job: jobs.plan(planning, repo), message: "planning queued" };
  }
  if (run.status !== "planned" && run.status !== "pending")
    throw new ConflictError(
      `protocol run ${run.id} is ${run.status}; start needs a pending, planned or paused run`,
    );
  await requireRepo(tx, run);
  // running from now: should the queue lose the job, the reconciler finds the run and queues it again
  const started = await tx.transitionProtocol(
    run.id,
    "running",
    { eventType: EVENT.startEnqueued, message: "Run queued", metadata: { reason: "api" } },
    { expectedFrom: run.status },
  );
  return { run: started, job: jobs.executeRun(started), message: "run queued" };
}

async function resume(tx: StoreOps, run: ProtocolRun): Promise<ActionOutcome> {
  if (run.status !== "paused") throw new ConflictError(`protocol run ${run.id} is ${run.status}, not paused`);
  await requireRepo(tx, run);
  const resumed = await tx.transitionProtocol(
    run.id,
    "running",
    { eventType: EVENT.protocolResumed, message: "Resumed through the API", metadata: { reason: "api" } },
    { expectedFrom: "paused" },
  );
  return { run: resumed, job: jobs.executeRun(resumed), message: "resume queued" };
}

async function cancel(tx: StoreOps, run: ProtocolRun): Promise<ActionOutcome> {
  if (run.status === "cancelled") return { run, message: "already cancelled" };
  const cancelled = await tx.transitionProtocol(
    run.id,
    "cancelled",
    { eventType: EVENT.protocolCancelled, message: "Cancelled through the API", metadata: { reason: "api" } },
    { expectedFrom: run.status },
  );
  // a running step is stopped by its runner, which sees the cancel within a second
  for (const s of await tx.listStepRuns(run.id)) {
    if (s.status === "pending" || s.status === "needs_qa")
      await tx.transitionStep(
        s.id,
        "cancelled",
        { eventType: EVENT.stepStatus, message: "Cancelled with its run", metadata: { reason: "api" } },
        { expectedFrom: s.status },
      );
  }
  return { run: cancelled, message: "cancelled" };
}

/** A failed or blocked step goes back to pending; a pending one stays. */
async function requeueStep(tx: StoreOps, step: StepRun, message: string, retry = false): Promise<StepRun> {
  if (step.status === "pending") return step;
  return tx.transitionStep(
    step.id,
    "pending",
    {
      eventType: retry ? EVENT.stepRetry : EVENT.stepStatus,
      message,
      metadata: { previous_status: step.status, ...(retry ? { retries: step.retries + 1 } : {}) },
    },
    { expectedFrom: step.status, ...(retry ? { patch: { retries: step.retries + 1 } } : {}) },
  );
}

async function runStep(tx: StoreOps, run: ProtocolRun, step: StepRun): Promise<ActionOutcome> {
  if (!RUNNABLE_STEP.includes(step.status))
    throw new ConflictError(
      `step ${step.id} is ${step.status}; only a pending, blocked or failed step can run`,
    );
  await requireRepo(tx, run);
  const taken = await takeUp(tx, run, `run step ${step.stepName}`);
  const queued = await requeueStep(tx, step, `Queued to run (was ${step.status})`);
  await tx.appendEvent({
    protocolRunId: run.id,
    stepRunId: step.id,
    eventType: EVENT.stepEnqueued,
    message: `${step.stepName} queued`,
  });
  return { run: taken, step: queued, job: jobs.executeStep(queued), message: `${step.stepName} queued` };
}

async function protocolAction(tx: StoreOps, run: ProtocolRun, action: (typeof PROTOCOL_ACTIONS)[number]) {
  switch (action) {
    case "start":
      return start(tx, run);
    case "resume":
      return resume(tx, run);
    case "pause":
      // the planner writes the spec and cannot be held halfway: a planning run is cancelled or waited for
      if (run.status === "planning")
        throw new ConflictError(
          `protocol run ${run.id} is planning, which cannot be paused; pause it once it is planned, or cancel it`,
        );
      return {
        run: await tx.transitionProtocol(
          run.id,
          "paused",
          {
            eventType: EVENT.protocolPaused,
            message:
              "Paused through the API; the engine call under way is stopped and its step runs again on resume",
            metadata: { reason: "api" },
          },
          { expectedFrom: run.status },
        ),
        message: "paused",
      };
    case "cancel":
      return cancel(tx, run);
    case "run_next_step": {
      const steps = await tx.listStepRuns(run.id);
      const next = steps
        .filter((s) => RUNNABLE_STEP.includes(s.status))
        .sort((a, b) => a.stepIndex - b.stepIndex)[0];
      if (!next) throw new NotFoundError("runnable step of protocol run", run.id);
      return runStep(tx, run, next);
    }
    case "retry_latest": {
      const latest = latestStep(
        await tx.listStepRuns(run.id),
        (s) => s.status === "failed" || s.status === "blocked",
      );
      if (!latest) throw new NotFoundError("failed or blocked step of protocol run", run.id);
      await requireRepo(tx, run);
      const taken = await takeUp(tx, run, `retry step ${latest.stepName}`);
      const step = await requeueStep(tx, latest, `Retry of ${latest.stepName} queued`, true);
      await tx.appendEvent({
        protocolRunId: run.id,
        stepRunId: step.id,
        eventType: EVENT.stepRetryEnqueued,
        message: `Retry of ${step.stepName} queued`,
        metadata: { retries: step.retries },
      });
      return { run: taken, step, job: jobs.executeRun(taken), message: `retry of ${step.stepName} queued` };
    }
    case "open_pr":
      await requireRepo(tx, run);
      await tx.appendEvent({ protocolRunId: run.id, eventType: EVENT.openPrEnqueued, message: "PR queued" });
      return { run, job: jobs.openPr(run), message: "PR queued" };
  }
}

async function stepAction(tx: StoreOps, step: StepRun, action: (typeof STEP_ACTIONS)[number]) {
  const run = await tx.getProtocolRun(step.protocolRunId);
  switch (action) {
    case "run":
      return runStep(tx, run, step);
    case "run_qa": {
      if (step.status === "completed" || step.status === "cancelled" || step.status === "running")
        throw new ConflictError(
          `step ${step.id} is ${step.status}; QA runs on a step that has run and is not done`,
        );
      if (step.status === "pending")
        throw new ConflictError(`step ${step.id} has not run yet; there is nothing for QA to check`);
      await requireRepo(tx, run);
      const taken = await takeUp(tx, run, `check step ${step.stepName}`);
      const qa = await queueQa(tx, step, null, { source: "api" });
      return { run: taken, ...qa, message: `QA of ${step.stepName} queued` };
    }
    case "approve": {
      if (step.status === "completed") return { run, step, message: "already completed" };
      if (step.status === "running" || step.status === "cancelled")
        throw new ConflictError(`step ${step.id} is ${step.status}; it cannot be approved`);
      const approved = await tx.transitionStep(
        step.id,
        "completed",
        {
          eventType: EVENT.manualApproval,
          message: "Approved through the API",
          metadata: { previous_status: step.status },
        },
        { expectedFrom: step.status },
      );
      return { run: await completeIfDone(tx, run.id), step: approved, message: `${step.stepName} approved` };
    }
  }
}

export function actionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store, queue } = ctx;
  const conflict = { description: "The run's or step's state does not allow the action; nothing changed" };

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/protocols/{id}/actions/{action}",
      tag: "actions",
      summary: `Protocol action: ${PROTOCOL_ACTIONS.join(", ")}`,
      description:
        "start: a planned run is queued (a pending run without a spec is planned from its description first; " +
        "a paused run resumes). pause: a planned or running run is held (the engine call under way stops " +
        "within a second); a planning run cannot be paused. resume: a paused run " +
        "runs again. cancel: idempotent; pending and needs_qa steps are cancelled. run_next_step: the first " +
        "pending, blocked or failed step runs alone, then the run pauses. retry_latest: the last failed or " +
        "blocked step goes back to pending (retries + 1) and the run continues. open_pr: queued.",
      params: z.object({ id: Id.describe("Protocol run id."), action: z.enum(PROTOCOL_ACTIONS) }),
      responses: {
        200: ActionReply,
        404: { description: "No such run, or no step for run_next_step/retry_latest" },
        409: conflict,
        503: QUEUE_UNAVAILABLE,
      },
      projectToken: true,
    },
    async ({ params }, req) => {
      const run = await store.getProtocolRun(params.id);
      await requireProjectAccess(ctx.secrets, req, run.projectId);
      return reply(
        await perform(store, queue, async (tx) =>
          protocolAction(tx, await tx.getProtocolRun(params.id), params.action),
        ),
      );
    },
  );

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/steps/{id}/actions/{action}",
      tag: "actions",
      summary: `Step action: ${STEP_ACTIONS.join(", ")}`,
      description:
        "run: a pending, blocked or failed step runs alone (with its QA and policies), then the run pauses. " +
        "run_qa: QA runs again on the step's existing outputs (not on a completed, cancelled, running or " +
        "never-run step). approve: the step is completed by hand; a run whose steps are all done completes. " +
        "A running run advances by itself: pause it first.",
      params: z.object({ id: Id.describe("Step run id."), action: z.enum(STEP_ACTIONS) }),
      responses: { 200: ActionReply, 409: conflict, 503: QUEUE_UNAVAILABLE },
      projectToken: true,
    },
    async ({ params }, req) => {
      const step = await store.getStepRun(params.id);
      const run = await store.getProtocolRun(step.protocolRunId);
      await requireProjectAccess(ctx.secrets, req, run.projectId);
      return reply(
        await perform(store, queue, async (tx) =>
          stepAction(tx, await tx.getStepRun(params.id), params.action),
        ),
      );
    },
  );
}
