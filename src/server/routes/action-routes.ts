/**
 * Protocol and step actions, as the original API had them: each route calls its use case (which
 * checks the state and writes its moves in one transaction; a refusal is a 409 and writes nothing),
 * queues the job the use case asks for after that commit, and renders the result.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RUN_ACTIONS, STEP_ACTIONS } from "../../services/action-rules.js";
import { dispatchOutcome, queueDispatch } from "../../services/dispatch.js";
import type { ActionContext } from "../../services/run-moves.js";
import { RUN_USE_CASES, STEP_USE_CASES } from "../../services/user-actions.js";
import { QUEUE_UNAVAILABLE } from "../api-errors.js";
import { EnqueuedJob, ProtocolRunOut, StepRunOut } from "../api-shapes.js";
import { requireProjectAccess } from "../auth.js";
import { actionReply } from "../run-replies.js";
import { Id, route, type ServerContext } from "../server-context.js";

const ActionReply = z.object({
  protocol: ProtocolRunOut,
  step: StepRunOut.optional().describe("The step the action moved, for step actions and run_next_step."),
  job: EnqueuedJob.optional().describe("The job queued to do the work, when there is one."),
  job_id: z.string().optional().describe("The queued job's id (the original's field); same as job.id."),
  message: z.string(),
});

export function actionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const actions: ActionContext = { store, source: "api" };
  const dispatch = queueDispatch(ctx.queue);
  const conflict = {
    description:
      "The run's or step's state does not allow the action (the run's and step's `allowed_actions` do not list it); nothing changed",
  };

  route(
    app,
    ctx,
    {
      method: "POST",
      url: "/protocols/{id}/actions/{action}",
      tag: "actions",
      summary: `Protocol action: ${RUN_ACTIONS.join(", ")}`,
      description:
        "start: a planned run is queued (a pending run without a spec is planned from its description first; " +
        "a paused run resumes). pause: a planned or running run is held (the engine call under way stops " +
        "within a second); a planning run cannot be paused. resume: a paused run " +
        "runs again. cancel: idempotent; pending and needs_qa steps are cancelled. run_next_step: the first " +
        "pending, blocked or failed step runs alone, then the run pauses. retry_latest: the last failed or " +
        "blocked step goes back to pending (retries + 1) and the run continues. open_pr: queued, for a run " +
        "with a branch and worktree of its own.",
      params: z.object({ id: Id.describe("Protocol run id."), action: z.enum(RUN_ACTIONS) }),
      responses: { 200: ActionReply, 409: conflict, 503: QUEUE_UNAVAILABLE },
      projectToken: true,
    },
    async ({ params }, req) => {
      const run = await store.getProtocolRun(params.id);
      await requireProjectAccess(ctx.secrets, req, run.projectId);
      const outcome = await RUN_USE_CASES[params.action](actions, params.id);
      return actionReply(store, await dispatchOutcome(outcome, dispatch));
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
      const outcome = await STEP_USE_CASES[params.action](actions, params.id);
      return actionReply(store, await dispatchOutcome(outcome, dispatch));
    },
  );
}
