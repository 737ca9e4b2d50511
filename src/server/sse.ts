/**
 * Server-Sent Events over the event ledger. Each message carries its ledger id, so a client that
 * reconnects with Last-Event-ID (or ?after=) gets exactly the events after it: none lost, none twice.
 *
 * Messages are unnamed by default, so a browser's `onmessage` receives every one; the event type is
 * `event_type` inside the JSON data. With `?named=true` each message is named by its event type
 * instead, for `addEventListener("<type>")` (EventSource then delivers nothing to `onmessage`).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Event, EventQuery, Store } from "../store/types.js";
import { eventOut } from "./api-shapes.js";

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;
const BATCH = 500;

/** Last-Event-ID (what EventSource sends on reconnect) wins over ?after=. */
function resumeCursor(req: FastifyRequest, after: number | undefined): number {
  const header = req.headers["last-event-id"];
  const value = Number(Array.isArray(header) ? header[0] : (header ?? after ?? 0));
  return Number.isInteger(value) && value > 0 ? value : 0;
}

function sseFrame(e: Event, named: boolean): string {
  return `id: ${e.id}\n${named ? `event: ${e.eventType}\n` : ""}data: ${JSON.stringify(eventOut(e))}\n\n`;
}

export function streamEvents(
  req: FastifyRequest,
  reply: FastifyReply,
  store: Store,
  query: Omit<EventQuery, "afterId" | "limit" | "newestFirst">,
  opts: { after: number | undefined; named: boolean },
): void {
  let cursor = resumeCursor(req, opts.after);
  let closed = false;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "x-request-id": req.id,
  });
  // a client that loses the connection waits this long before reconnecting
  res.write(": connected\nretry: 1000\n\n");
  const heartbeat = setInterval(() => res.write(": ping\n\n"), HEARTBEAT_MS);
  const poll = async () => {
    while (!closed) {
      try {
        const events = await store.listEvents({ ...query, afterId: cursor, limit: BATCH });
        for (const e of events) {
          if (closed) return;
          res.write(sseFrame(e, opts.named));
          cursor = e.id;
        }
        if (events.length === BATCH) continue;
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
