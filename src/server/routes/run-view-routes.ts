/**
 * What a person reads about runs: the run list (search, filters, pages), a run's timeline, a step's
 * (or planning's) transcript and a step's (or the run's) diff from its checkpoints. Each route is an
 * adapter over a read use case of src/services/.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { dataDir } from "../../config/data-paths.js";
import { DEFAULT_RUN_PAGE, listRuns, MAX_RUN_PAGE } from "../../services/run-list.js";
import { runTimeline } from "../../services/run-timeline.js";
import { runDiff } from "../../services/step-diff.js";
import { readTranscript } from "../../services/step-transcript.js";
import type { StepRun } from "../../store/types.js";
import { projectsHiddenFrom, requireProjectAccess } from "../auth.js";
import {
  DiffOut,
  diffOut,
  RunListOut,
  RunTimelineOut,
  runListOut,
  TranscriptOut,
  timelineOut,
  transcriptOut,
} from "../read-shapes.js";
import { runsReply } from "../run-replies.js";
import { Id, IdParam, route, type ServerContext } from "../server-context.js";

const many = <T extends z.ZodType>(item: T) =>
  z
    .union([item, z.array(item)])
    .optional()
    .transform((v) => (v === undefined ? undefined : ([v].flat() as z.output<T>[])));

const RunListQuery = z.object({
  search: z.string().max(200).optional().describe("Words in the run's name or description (all must match)."),
  status: many(z.string()).describe("Only runs in these statuses (repeat the parameter for several)."),
  project_id: many(Id).describe("Only these projects' runs (repeat for several)."),
  limit: z.coerce.number().int().min(1).max(MAX_RUN_PAGE).default(DEFAULT_RUN_PAGE),
  cursor: Id.optional().describe("The `next_cursor` of the previous page: the runs older than it."),
});

const DIFF_REFUSED = {
  description:
    "`no_checkpoints`: the run works in a checkout of the user's, not a worktree of its own; `worktree_gone`: its worktree was pruned",
};

export function runViewRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;
  const accessibleRun = async (req: FastifyRequest, id: number) => {
    const run = await store.getProtocolRun(id);
    await requireProjectAccess(ctx.secrets, req, run.projectId);
    return run;
  };
  const accessibleStep = async (
    req: FastifyRequest,
    id: number,
  ): Promise<{ step: StepRun; run: Awaited<ReturnType<typeof accessibleRun>> }> => {
    const step = await store.getStepRun(id);
    return { step, run: await accessibleRun(req, step.protocolRunId) };
  };
  const get = { method: "GET" as const, tag: "protocols", projectToken: true };

  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/protocols",
      tag: "protocols",
      summary: "Runs of every project: search, filter by status and project, newest first, a page at a time",
      description:
        "Without parameters: the newest 50 runs of every project the request may see (a guarded project's runs need its X-Project-Token). `next_cursor` gives the next page.",
      query: RunListQuery,
      responses: { 200: RunListOut },
    },
    async ({ query }, req) => {
      for (const id of query.project_id ?? []) {
        await store.getProject(id);
        await requireProjectAccess(ctx.secrets, req, id);
      }
      const list = await listRuns(store, {
        search: query.search,
        statuses: query.status,
        projectIds: query.project_id,
        hiddenProjectIds: query.project_id ? [] : await projectsHiddenFrom(ctx.secrets, req),
        cursor: query.cursor,
        limit: query.limit,
      });
      return runListOut(
        list,
        await runsReply(
          store,
          list.items.map((i) => i.run),
        ),
      );
    },
  );

  route(
    app,
    ctx,
    {
      ...get,
      url: "/protocols/{id}/timeline",
      summary: "The run's timeline: per step its attempts, durations, loops, retries, QA verdicts and tokens",
      params: IdParam,
      responses: { 200: RunTimelineOut },
    },
    async ({ params }, req) => timelineOut(await runTimeline(store, await accessibleRun(req, params.id))),
  );

  route(
    app,
    ctx,
    {
      ...get,
      url: "/protocols/{id}/transcript",
      summary: "The planning engine's transcripts of the run",
      params: IdParam,
      responses: { 200: TranscriptOut },
    },
    async ({ params }, req) => {
      const run = await accessibleRun(req, params.id);
      return transcriptOut(run.id, null, readTranscript(run, null));
    },
  );

  route(
    app,
    ctx,
    {
      ...get,
      url: "/protocols/{id}/diff",
      summary: "What the whole run changed: from its start to the working tree (unified diff)",
      params: IdParam,
      responses: { 200: DiffOut, 409: DIFF_REFUSED },
    },
    async ({ params }, req) => {
      const run = await accessibleRun(req, params.id);
      return diffOut(run.id, null, await runDiff(store, run, null, dataDir(process.env)));
    },
  );

  route(
    app,
    ctx,
    {
      ...get,
      tag: "steps",
      url: "/steps/{id}/transcript",
      summary: "What the engine did in the step: messages, tool calls, outputs, usage, per attempt and phase",
      params: IdParam,
      responses: { 200: TranscriptOut },
    },
    async ({ params }, req) => {
      const { step, run } = await accessibleStep(req, params.id);
      return transcriptOut(run.id, step.id, readTranscript(run, step));
    },
  );

  route(
    app,
    ctx,
    {
      ...get,
      tag: "steps",
      url: "/steps/{id}/diff",
      summary: "What the step changed, from its checkpoints (unified diff)",
      description:
        "From the checkpoint of the step before it (or the run's start) to the step's latest checkpoint, or to the working tree while it runs. `.protocols/` is left out.",
      params: IdParam,
      responses: { 200: DiffOut, 409: DIFF_REFUSED },
    },
    async ({ params }, req) => {
      const { step, run } = await accessibleStep(req, params.id);
      return diffOut(run.id, step.id, await runDiff(store, run, step, dataDir(process.env)));
    },
  );
}
