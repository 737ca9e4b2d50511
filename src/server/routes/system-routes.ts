/** Health, metrics, the API's own documentation, and the queue. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { JOB_KINDS, type JobQueue, type JobState } from "../../queue/job-queue.js";
import { errorMessage } from "../../shared/errors.js";
import { QUEUE_UNAVAILABLE } from "../api-errors.js";
import { JobOut, jobOut, ORIGINAL_JOB_STATUSES, ORIGINAL_STATUS_STATES } from "../api-shapes.js";
import { renderDocsPage } from "../docs-page.js";
import { openApiDocument } from "../openapi.js";
import { route, type ServerContext } from "../server-context.js";

const Reachability = z.enum(["ok", "down"]);

const OUR_STATES = ["waiting", "delayed", "active", "completed", "failed", "dead", "cancelled"] as const;

const QueueStats = z.object({
  queued: z.number().int(),
  started: z.number().int(),
  finished: z.number().int(),
  failed: z.number().int(),
});

const QueuesReply = z
  .object({
    backend: z.string().describe("embedded-sqlite, embedded-postgres or bullmq-redis."),
    default: QueueStats.describe("The original's stats of its one queue, over every kind."),
    counts: z.record(z.string(), z.number().int()).describe("Jobs by state, in this queue's own states."),
    kinds: z.array(z.string()),
  })
  .describe(
    "Queue stats: the original's shape {backend, <queue>: {queued, started, finished, failed}}, plus ours.",
  );

const JobsQuery = z.object({
  status: z
    .enum([...ORIGINAL_JOB_STATUSES, ...OUR_STATES])
    .optional()
    .describe(
      "queued (waiting, delayed), started (active), finished (completed), failed (failed, dead, cancelled), or one of our states.",
    ),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

function statesFor(status: z.infer<typeof JobsQuery>["status"]): JobState[] | undefined {
  if (status === undefined) return undefined;
  return status in ORIGINAL_STATUS_STATES
    ? ORIGINAL_STATUS_STATES[status as keyof typeof ORIGINAL_STATUS_STATES]
    : [status as JobState];
}

async function queueStats(queue: JobQueue, backend: string) {
  const counts = await queue.counts();
  const sum = (states: JobState[]) => states.reduce((n, s) => n + (counts[s] ?? 0), 0);
  return {
    backend,
    default: {
      queued: sum(ORIGINAL_STATUS_STATES.queued),
      started: sum(ORIGINAL_STATUS_STATES.started),
      finished: sum(ORIGINAL_STATUS_STATES.finished),
      failed: sum(ORIGINAL_STATUS_STATES.failed),
    },
    counts,
    kinds: [...JOB_KINDS],
  };
}

export function systemRoutes(app: FastifyInstance, ctx: ServerContext, queueBackend: string): void {
  const { store } = ctx;

  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/health",
      tag: "system",
      summary: "Liveness, database and job queue check",
      auth: "none",
      responses: {
        200: z.object({ status: z.literal("ok") }),
        503: {
          description: "The database or the job queue (Redis) does not answer",
          schema: z.object({
            status: z.literal("degraded"),
            database: Reachability,
            queue: Reachability,
            detail: z.string().describe("What does not answer, and why."),
          }),
        },
      },
    },
    async (_input, _req, reply) => {
      const problems: string[] = [];
      const check = async (what: string, probe: () => Promise<unknown>) =>
        probe().then(
          () => "ok" as const,
          (err: unknown) => {
            problems.push(`${what}: ${errorMessage(err)}`);
            return "down" as const;
          },
        );
      const [database, queue] = await Promise.all([
        check("database", () => store.listProjects()),
        check("queue", () => ctx.queue.counts()),
      ]);
      if (problems.length === 0) return { status: "ok" };
      return reply.status(503).send({ status: "degraded", database, queue, detail: problems.join("; ") });
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/metrics",
      tag: "system",
      summary: "Prometheus metrics (text format); see docs/api.md for the families",
      auth: "none",
      responses: {
        200: { description: "Prometheus text exposition", contentType: "text/plain" },
        503: QUEUE_UNAVAILABLE,
      },
    },
    async (_input, _req, reply) =>
      reply.type("text/plain; version=0.0.4").send(await ctx.metrics.render(store, ctx.queue)),
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/openapi.json",
      tag: "system",
      summary: "This API as OpenAPI 3.1 (also committed as docs/openapi.json)",
      auth: "none",
      responses: { 200: { description: "The OpenAPI document", schema: z.record(z.string(), z.unknown()) } },
    },
    async () => openApiDocument(ctx.routes),
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/docs",
      tag: "system",
      summary: "This API as a readable page (self-contained HTML)",
      auth: "none",
      responses: { 200: { description: "HTML", contentType: "text/html" } },
    },
    async (_input, _req, reply) =>
      reply.type("text/html; charset=utf-8").send(renderDocsPage(openApiDocument(ctx.routes))),
  );

  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/queues",
      tag: "queues",
      summary: "Queue stats",
      responses: { 200: QueuesReply, 503: QUEUE_UNAVAILABLE },
    },
    async () => queueStats(ctx.queue, queueBackend),
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/queues/jobs",
      tag: "queues",
      summary: "Recent jobs, optionally of one status",
      query: JobsQuery,
      responses: { 200: z.array(JobOut), 503: QUEUE_UNAVAILABLE },
    },
    async ({ query }) => {
      const states = statesFor(query.status);
      return (await ctx.queue.list({ ...(states ? { states } : {}), limit: query.limit })).map(jobOut);
    },
  );
}
