/** The event ledger: paged lists (newest first, or after a cursor) and live streams. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { eventOut } from "../api-shapes.js";
import { IdParam, route, type ServerContext } from "../server-context.js";
import { streamEvents } from "../sse.js";

const EventsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  after: z.coerce.number().int().min(0).optional(),
  project_id: z.coerce.number().int().optional(),
  event_type: z.union([z.string(), z.array(z.string())]).optional(),
});

export function eventRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { store } = ctx;

  /** With `after`: the events after that id, oldest first (a cursor); without: the newest `limit`, newest first. */
  const page = async (q: z.infer<typeof EventsQuery>, protocolRunId?: number) => {
    const types =
      q.event_type === undefined ? undefined : Array.isArray(q.event_type) ? q.event_type : [q.event_type];
    const base = {
      ...(protocolRunId ? { protocolRunId } : {}),
      ...(q.project_id ? { projectId: q.project_id } : {}),
      ...(types ? { eventTypes: types } : {}),
    };
    if (q.after !== undefined) {
      const events = await store.listEvents({ ...base, afterId: q.after, limit: q.limit });
      return { events: events.map(eventOut), next_after: events.at(-1)?.id ?? q.after };
    }
    const newest = await store.listEvents({ ...base, limit: q.limit, newestFirst: true });
    return { events: newest.map(eventOut), next_after: newest[0]?.id ?? 0 };
  };

  route(
    app,
    {
      method: "GET",
      url: "/protocols/{id}/events",
      summary: "Events of a run (?limit, ?after cursor, ?event_type)",
    },
    async (req) => {
      const run = await store.getProtocolRun(IdParam.parse(req.params).id);
      return page(EventsQuery.parse(req.query), run.id);
    },
  );
  route(
    app,
    {
      method: "GET",
      url: "/events",
      summary: "Events of all runs (?project_id, ?limit, ?after cursor, ?event_type)",
    },
    async (req) => page(EventsQuery.parse(req.query)),
  );
  route(
    app,
    {
      method: "GET",
      url: "/protocols/{id}/events/stream",
      summary: "Live events of a run (SSE; resumable with Last-Event-ID)",
    },
    async (req, reply) => {
      const run = await store.getProtocolRun(IdParam.parse(req.params).id);
      streamEvents(req, reply, store, { protocolRunId: run.id });
    },
  );
  route(
    app,
    {
      method: "GET",
      url: "/events/stream",
      summary: "Live events of all runs (SSE; resumable with Last-Event-ID)",
    },
    async (req, reply) => {
      const q = z.object({ project_id: z.coerce.number().int().optional() }).parse(req.query);
      streamEvents(req, reply, store, q.project_id ? { projectId: q.project_id } : {});
    },
  );
}
