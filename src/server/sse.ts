/**
 * Server-Sent Events over the event ledger. Each event carries its sequence id, so a client that
 * reconnects with Last-Event-ID (or ?after=) gets exactly the events after it: none lost, none twice.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Event, EventQuery, Store } from "../store/types.js";
import { eventOut } from "./api-shapes.js";

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;

export function resumeCursor(req: FastifyRequest): number {
  const header = req.headers["last-event-id"];
  const query = (req.query as { after?: string }).after;
  const value = Number(Array.isArray(header) ? header[0] : (header ?? query ?? 0));
  return Number.isFinite(value) && value > 0 ? value : 0;
}

export function streamEvents(
  req: FastifyRequest,
  reply: FastifyReply,
  store: Store,
  query: Omit<EventQuery, "afterId" | "limit">,
): void {
  let cursor = resumeCursor(req);
  let closed = false;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write(": connected\n\n");
  const send = (e: Event) =>
    res.write(`id: ${e.id}\nevent: ${e.eventType}\ndata: ${JSON.stringify(eventOut(e))}\n\n`);
  const heartbeat = setInterval(() => res.write(": ping\n\n"), HEARTBEAT_MS);
  const poll = async () => {
    while (!closed) {
      try {
        const events = await store.listEvents({ ...query, afterId: cursor, limit: 500 });
        for (const e of events) {
          send(e);
          cursor = e.id;
        }
        if (events.length === 500) continue;
      } catch (err) {
        req.log.warn({ err }, "event stream poll failed");
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  req.raw.on("close", () => {
    closed = true;
    clearInterval(heartbeat);
  });
  void poll();
}
