/**
 * Server-Sent Events over the event ledger. Each message carries its ledger id, so a client that
 * reconnects with Last-Event-ID (or ?after=) gets exactly the events after it: none lost, none twice.
 *
 * Messages are unnamed by default, so a browser's `onmessage` receives every one; the event type is
 * `event_type` inside the JSON data. With `?named=true` each message is named by its event type
 * instead, for `addEventListener("<type>")` (EventSource then delivers nothing to `onmessage`).
 */
import type { Server } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { InvalidInputError } from "../shared/errors.js";
import type { Event, EventQuery, Store } from "../store/types.js";
import { eventOut } from "./api-shapes.js";

const POLL_MS = 250;
const HEARTBEAT_MS = 15_000;
const BATCH = 500;

/**
 * Last-Event-ID (what EventSource sends on reconnect) wins over ?after=. One that is no event id is
 * a 400: read as 0 it would replay the whole ledger.
 */
function resumeCursor(req: FastifyRequest, after: number | undefined): number {
  const header = req.headers["last-event-id"];
  const given = Array.isArray(header) ? header[0] : header;
  if (given === undefined) return after ?? 0;
  if (!/^\d+$/.test(given.trim()) || !Number.isSafeInteger(Number(given)))
    throw new InvalidInputError(`Last-Event-ID: ${JSON.stringify(given)} is not an event id`);
  return Number(given);
}

/** The streams open on each HTTP server, ended when it closes (see endStreamsOnClose). */
const openStreams = new WeakMap<Server, Set<() => void>>();

/**
 * A stream never ends by itself, and a closing server waits for its connections: so the streams end
 * first, and `tgz server` stops at once with a console open. Clients reconnect with Last-Event-ID.
 */
export function endStreamsOnClose(app: FastifyInstance): void {
  app.addHook("preClose", async () => {
    for (const end of openStreams.get(app.server) ?? []) end();
  });
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
  /** Waits until the client has taken what was written (or is gone): a slow reader is not buffered for. */
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        res.off("drain", done).off("close", done);
        resolve();
      };
      res.once("drain", done).once("close", done);
    });
  const poll = async () => {
    while (!closed) {
      try {
        const events = await store.listEvents({ ...query, afterId: cursor, limit: BATCH });
        for (const e of events) {
          if (closed) return;
          const flushed = res.write(sseFrame(e, opts.named));
          cursor = e.id;
          if (!flushed) await drained();
        }
        if (events.length === BATCH) continue;
      } catch (err) {
        req.log.warn({ err }, "event stream poll failed");
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  const streams = openStreams.get(req.server.server) ?? new Set<() => void>();
  openStreams.set(req.server.server, streams);
  const end = () => {
    closed = true;
    clearInterval(heartbeat);
    streams.delete(end);
    res.end();
  };
  streams.add(end);
  req.raw.on("close", end);
  void poll();
}
