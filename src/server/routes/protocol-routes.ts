/** One protocol run, its frozen spec, its steps and the tokens it used. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { runSituation } from "../../services/run-situation.js";
import type { UsageScope } from "../../store/types.js";
import { NO_USAGE, usageJson } from "../../store/usage-json.js";
import { RunUsageOut, StepRunOut } from "../api-shapes.js";
import { requireProjectAccess } from "../auth.js";
import { ProtocolRunDetailOut, situationOut } from "../read-shapes.js";
import { runReply, stepsReply } from "../run-replies.js";
import { IdParam, route, type ServerContext } from "../server-context.js";

const SpecReply = z.object({
  protocol_run_id: z.number().int(),
  protocol_name: z.string(),
  project_id: z.number().int(),
  spec: z.record(z.string(), z.unknown()).nullable().describe("The frozen ProtocolSpec, as it was sent."),
  spec_hash: z.string().nullable(),
  validation_status: z.enum(["valid", "invalid", "missing"]),
  validation_errors: z.array(z.object({ pointer: z.string(), message: z.string() })),
  validated_at: z.string().nullable(),
});

export function protocolRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const accessibleRun = async (req: Parameters<typeof requireProjectAccess>[1], id: number) => {
    const run = await store.getProtocolRun(id);
    await requireProjectAccess(ctx.secrets, req, run.projectId);
    return run;
  };
  const common = { method: "GET" as const, tag: "protocols", params: IdParam, projectToken: true };

  route(
    app,
    ctx,
    {
      ...common,
      url: "/protocols/{id}",
      summary: "One protocol run, with where it stands (why it stopped, what to do next) and its PR",
      responses: { 200: ProtocolRunDetailOut },
    },
    async ({ params }, req) => {
      const run = await accessibleRun(req, params.id);
      const [reply, situation, project] = await Promise.all([
        runReply(store, run),
        runSituation(store, run),
        store.getProject(run.projectId),
      ]);
      return {
        ...reply,
        project_name: project.name,
        situation: situationOut(situation),
        pr_url: situation.pr?.url ?? null,
      };
    },
  );
  route(
    app,
    ctx,
    {
      ...common,
      url: "/protocols/{id}/spec",
      summary: "The frozen spec with its hash and validation",
      responses: { 200: SpecReply },
    },
    async ({ params }, req) => {
      const run = await accessibleRun(req, params.id);
      const meta = run.templateConfig.spec_meta;
      return {
        protocol_run_id: run.id,
        protocol_name: run.protocolName,
        project_id: run.projectId,
        spec: run.templateConfig.protocol_spec ?? null,
        spec_hash: meta?.spec_hash ?? null,
        validation_status: meta?.status ?? "missing",
        validation_errors: meta?.errors ?? [],
        validated_at: meta?.validated_at ?? null,
      };
    },
  );
  route(
    app,
    ctx,
    {
      ...common,
      url: "/protocols/{id}/usage",
      summary: "Tokens the run used: in all, by phase (plan, exec, qa) and by step",
      responses: { 200: RunUsageOut },
    },
    async ({ params }, req) => {
      const run = await accessibleRun(req, params.id);
      const sum = async (scope: Omit<UsageScope, "protocolRunId">) =>
        usageJson(await store.sumUsage({ protocolRunId: run.id, ...scope }));
      const [steps, byStep, total, plan, exec, qa] = await Promise.all([
        store.listStepStates(run.id),
        store.sumUsageByStep(run.id),
        sum({}),
        sum({ phase: "plan" }),
        sum({ phase: "exec" }),
        sum({ phase: "qa" }),
      ]);
      return {
        protocol_run_id: run.id,
        total,
        by_phase: { plan, exec, qa },
        steps: steps.map((s) => ({
          step_run_id: s.id,
          step_name: s.stepName,
          status: s.status,
          usage: usageJson(byStep.get(s.id) ?? NO_USAGE),
        })),
      };
    },
  );
  route(
    app,
    ctx,
    {
      ...common,
      url: "/protocols/{id}/steps",
      summary: "Steps of a protocol run, in order",
      responses: { 200: z.array(StepRunOut) },
    },
    async ({ params }, req) => {
      return stepsReply(store, await accessibleRun(req, params.id));
    },
  );
}
