/**
 * The event ledger. Lists are JSON arrays as in the original: the newest first, or — with `after` —
 * the events after that id, oldest first (a cursor). Either way `X-Next-Cursor` (and a `Link` header
 * with rel="next") give the `after` value that returns what comes next. Live streams are SSE.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EventQuery } from "../../store/types.js";
import { EventOut, eventOut } from "../api-shapes.js";
import { projectsHiddenFrom, requireProjectAccess } from "../auth.js";
import { Id, IdParam, route, type ServerContext } from "../server-context.js";
import { streamEvents } from "../sse.js";

/** The original's onboarding events (`kind=onboarding`). */
const ONBOARDING_EVENTS = [
  "setup_enqueued",
  "setup_started",
  "setup_pending_clone",
  "setup_blocked",
  "setup_clone_failed",
  "setup_cloned",
  "setup_local_path_recorded",
  "setup_discovery_skipped",
  "setup_discovery_started",
  "setup_discovery_completed",
  "setup_discovery_warning",
  "setup_assets",
  "setup_warning",
  "setup_git_remote",
  "setup_git_identity",
  "setup_clarifications",
  "setup_completed",
  "setup_failed",
];

const eventTypes = z
  .union([z.string(), z.array(z.string())])
  .optional()
  .describe("Only these event types (repeat the parameter for several).");
const after = z.coerce
  .number()
  .int()
  .min(0)
  .optional()
  .describe("Cursor: only events with a larger id, oldest first (X-Next-Cursor of the previous page).");

const listQuery = (defaultLimit: number) =>
  z.object({
    limit: z.coerce.number().int().min(1).max(1000).default(defaultLimit),
    after,
    event_type: eventTypes,
  });
const RunEventsQuery = listQuery(1000);
const AllEventsQuery = listQuery(50).extend({
  project_id: Id.optional().describe("Only this project's events."),
  kind: z.enum(["onboarding"]).optional().describe("onboarding: only the setup_* events (as the original)."),
});
const streamQuery = z.object({
  after: after.describe("Start after this id (Last-Event-ID wins when both are given)."),
  event_type: eventTypes,
  named: z
    .enum(["true", "false"])
    .optional()
    .describe(
      "true: name each message by its event type (for addEventListener) instead of unnamed messages.",
    ),
});

const CURSOR_HEADERS = {
  "X-Next-Cursor": "The `after` value that returns the events that come next.",
  Link: 'The next page, rel="next".',
};

function typesOf(q: { event_type?: string | string[] | undefined; kind?: "onboarding" | undefined }) {
  const asked = q.event_type === undefined ? undefined : [q.event_type].flat();
  if (q.kind !== "onboarding") return asked;
  return asked ? asked.filter((t) => ONBOARDING_EVENTS.includes(t)) : ONBOARDING_EVENTS;
}

function nextLink(req: FastifyRequest, cursor: number): string {
  const url = new URL(req.url, "http://localhost");
  url.searchParams.set("after", String(cursor));
  return `<${url.pathname}${url.search}>; rel="next"`;
}

export function eventRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;

  /** One project (its token checked), or every project but the guarded ones the request has no token of. */
  const projectScope = async (
    req: FastifyRequest,
    projectId: number | undefined,
  ): Promise<Pick<EventQuery, "projectId" | "excludeProjectIds">> => {
    if (projectId === undefined) return { excludeProjectIds: await projectsHiddenFrom(ctx.secrets, req) };
    await store.getProject(projectId);
    await requireProjectAccess(ctx.secrets, req, projectId);
    return { projectId };
  };

  const page = async (
    req: FastifyRequest,
    reply: FastifyReply,
    q: { limit: number; after?: number | undefined },
    filter: Omit<EventQuery, "afterId" | "limit" | "newestFirst">,
  ) => {
    const events =
      filter.eventTypes?.length === 0
        ? []
        : q.after !== undefined
          ? await store.listEvents({ ...filter, afterId: q.after, limit: q.limit })
          : await store.listEvents({ ...filter, limit: q.limit, newestFirst: true });
    const cursor = q.after !== undefined ? (events.at(-1)?.id ?? q.after) : (events[0]?.id ?? 0);
    void reply.header("x-next-cursor", String(cursor)).header("link", nextLink(req, cursor));
    return events.map(eventOut);
  };

  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/protocols/{id}/events",
      tag: "events",
      summary: "Events of a run: newest first, or after a cursor oldest first",
      params: IdParam,
      query: RunEventsQuery,
      responses: { 200: { description: "Events", schema: z.array(EventOut), headers: CURSOR_HEADERS } },
      projectToken: true,
    },
    async ({ params, query }, req, reply) => {
      const run = await store.getProtocolRun(params.id);
      await requireProjectAccess(ctx.secrets, req, run.projectId);
      const types = typesOf(query);
      return page(req, reply, query, { protocolRunId: run.id, ...(types ? { eventTypes: types } : {}) });
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/events",
      tag: "events",
      summary: "Recent events of all runs (default 50): newest first, or after a cursor oldest first",
      query: AllEventsQuery,
      responses: { 200: { description: "Events", schema: z.array(EventOut), headers: CURSOR_HEADERS } },
    },
    async ({ query }, req, reply) => {
      const types = typesOf(query);
      return page(req, reply, query, {
        ...(await projectScope(req, query.project_id)),
        ...(types ? { eventTypes: types } : {}),
      });
    },
  );

  const stream = { description: "An endless text/event-stream", contentType: "text/event-stream" };
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/protocols/{id}/events/stream",
      tag: "events",
      summary: "Live events of a run (SSE; resumable with Last-Event-ID)",
      description:
        "Each message is `id: <event id>` and `data: <Event JSON>`; unnamed unless named=true. On reconnect " +
        "the browser sends Last-Event-ID and gets exactly the events after it.",
      params: IdParam,
      query: streamQuery,
      responses: { 200: stream },
      projectToken: true,
    },
    async ({ params, query }, req, reply) => {
      const run = await store.getProtocolRun(params.id);
      await requireProjectAccess(ctx.secrets, req, run.projectId);
      const types = typesOf(query);
      streamEvents(
        req,
        reply,
        store,
        { protocolRunId: run.id, ...(types ? { eventTypes: types } : {}) },
        { after: query.after, named: query.named === "true" },
      );
    },
  );
  route(
    app,
    ctx,
    {
      method: "GET",
      url: "/events/stream",
      tag: "events",
      summary: "Live events of all runs (SSE; resumable with Last-Event-ID)",
      query: streamQuery.extend({ project_id: Id.optional().describe("Only this project's events.") }),
      responses: { 200: stream },
    },
    async ({ query }, req, reply) => {
      const scope = await projectScope(req, query.project_id);
      const types = typesOf(query);
      streamEvents(
        req,
        reply,
        store,
        { ...scope, ...(types ? { eventTypes: types } : {}) },
        { after: query.after, named: query.named === "true" },
      );
    },
  );
}
