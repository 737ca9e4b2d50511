/**
 * Protocol and step actions. Work goes to the queue (idempotent: one waiting job per run), status
 * changes go through the store's status machine, each with its event; illegal ones answer 409.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { EVENT } from "../../runner/event-types.js";
import { NotFoundError } from "../../shared/errors.js";
import type { ProtocolRun } from "../../store/types.js";
import { ConflictError } from "../api-errors.js";
import { protocolOut, stepOut } from "../api-shapes.js";
import { IdParam, route, type ServerContext } from "../server-context.js";

const ACTIONS = ["start", "pause", "resume", "cancel", "run_next_step", "retry_latest", "open_pr"] as const;
const STEP_ACTIONS = ["run", "run_qa", "approve"] as const;
const RUNNABLE = new Set(["planned", "paused", "blocked", "failed", "running"]);

export function actionRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store, queue } = ctx;

  /** Queues the run for a worker: the runner picks up pending steps, retries failed ones and advances by itself. */
  const enqueueRun = async (run: ProtocolRun, eventType: string, message: string) => {
    if (!RUNNABLE.has(run.status))
      throw new ConflictError(`protocol run ${run.id} is ${run.status}; it cannot run`);
    const job = await queue.enqueue(
      "execute_protocol",
      { protocol_run_id: run.id },
      { singletonKey: `run:${run.id}` },
    );
    await store.appendEvent({
      protocolRunId: run.id,
      eventType,
      message,
      metadata: { job_id: job.id, deduplicated: job.deduplicated },
    });
    return { protocol: protocolOut(await store.getProtocolRun(run.id)), job };
  };

  route(
    app,
    {
      method: "POST",
      url: "/protocols/{id}/actions/{action}",
      summary: `Protocol actions: ${ACTIONS.join(", ")}`,
    },
    async (req) => {
      const { id } = IdParam.parse(req.params);
      const action = z.enum(ACTIONS).parse((req.params as { action: string }).action);
      const run = await store.getProtocolRun(id);
      const steps = await store.listStepRuns(run.id);
      switch (action) {
        case "start":
          if (run.status === "pending")
            throw new ConflictError(`protocol run ${id} has no spec yet; create it with a spec or plan it`);
          return enqueueRun(run, "start_enqueued", "Run queued");
        case "resume":
          if (run.status !== "paused")
            throw new ConflictError(`protocol run ${id} is ${run.status}, not paused`);
          return enqueueRun(run, "resume_enqueued", "Resume queued");
        case "pause":
          return {
            protocol: protocolOut(
              await store.transitionProtocol(id, "paused", {
                eventType: EVENT.protocolPaused,
                message:
                  "Paused through the API; the engine call under way is stopped and its step runs again on resume",
                metadata: { reason: "api" },
              }),
            ),
          };
        case "cancel":
          if (run.status === "cancelled") return { protocol: protocolOut(run) };
          return {
            protocol: protocolOut(
              await store.transitionProtocol(id, "cancelled", {
                eventType: EVENT.protocolCancelled,
                message: "Cancelled through the API",
                metadata: { reason: "api" },
              }),
            ),
          };
        case "run_next_step":
          if (!steps.some((s) => s.status === "pending"))
            throw new NotFoundError("runnable step of protocol run", id);
          return enqueueRun(run, "step_enqueued", "Next step queued");
        case "retry_latest": {
          const latest = [...steps]
            .filter((s) => s.status === "failed" || s.status === "blocked")
            .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))[0];
          if (!latest) throw new NotFoundError("failed step of protocol run", id);
          return enqueueRun(run, "step_retry_enqueued", `Retry of ${latest.stepName} queued`);
        }
        case "open_pr": {
          const job = await queue.enqueue("open_pr", { protocol_run_id: id }, { singletonKey: `pr:${id}` });
          await store.appendEvent({
            protocolRunId: id,
            eventType: "open_pr_enqueued",
            message: "PR queued",
            metadata: { job_id: job.id },
          });
          return { protocol: protocolOut(run), job };
        }
      }
    },
  );

  route(
    app,
    {
      method: "POST",
      url: "/steps/{id}/actions/{action}",
      summary: `Step actions: ${STEP_ACTIONS.join(", ")}`,
    },
    async (req) => {
      const { id } = IdParam.parse(req.params);
      const action = z.enum(STEP_ACTIONS).parse((req.params as { action: string }).action);
      const step = await store.getStepRun(id);
      const run = await store.getProtocolRun(step.protocolRunId);
      if (action === "approve") {
        const approved = await store.transitionStep(id, "completed", {
          eventType: "manual_approval",
          message: "Approved through the API",
          metadata: { previous_status: step.status },
        });
        return { step: stepOut(approved) };
      }
      if (step.status === "running") throw new ConflictError(`step ${id} is running`);
      // run_qa re-runs the step with its QA: QA judges a step's fresh output, never a stale one
      if (step.status !== "pending") {
        await store.transitionStep(id, "pending", {
          eventType: EVENT.stepStatus,
          message: action === "run_qa" ? "Queued again for QA" : "Queued again",
          metadata: { action },
        });
      }
      const out = await enqueueRun(
        run,
        action === "run_qa" ? "qa_enqueued" : "step_enqueued",
        `${step.stepName} queued`,
      );
      return { ...out, step: stepOut(await store.getStepRun(id)) };
    },
  );
}
