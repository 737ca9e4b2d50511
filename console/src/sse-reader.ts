/**
 * Server-Sent Events over fetch: EventSource cannot send the Authorization header. After a drop the
 * stream reconnects with Last-Event-ID, and an event id at or below the last one delivered is
 * dropped, so the page never shows an event twice.
 */
import { ApiError, apiErrorOf, authHeaders, reportUnauthorized } from "./api-client.js";
import type { ApiEvent } from "./api-types.js";
import { SseParser } from "./sse-parser.js";

export type StreamState = "connecting" | "live" | "reconnecting" | "stopped";

export interface FollowOptions {
  /** The stream's path, e.g. /protocols/3/events/stream. */
  path: string;
  /** The first connection asks for the events after this id. */
  after: number;
  onEvent: (event: ApiEvent) => void;
  onState: (state: StreamState, detail?: string) => void;
}

const MAX_WAIT_MS = 10_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** Follows a stream until the returned function is called; a refused stream (401, 403, 404) stops. */
export function followEvents(opts: FollowOptions): () => void {
  const abort = new AbortController();
  let lastId = opts.after;
  let retryMs = 1000;
  let failures = 0;

  const connect = async (): Promise<void> => {
    const separator = opts.path.includes("?") ? "&" : "?";
    const res = await fetch(`${opts.path}${separator}after=${opts.after}`, {
      headers: {
        accept: "text/event-stream",
        ...authHeaders(),
        // on a reconnect the server resumes after the last event this page has (it wins over ?after=)
        ...(lastId > 0 ? { "last-event-id": String(lastId) } : {}),
      },
      cache: "no-store",
      signal: abort.signal,
    });
    if (!res.ok || !res.body) throw await apiErrorOf(res);
    opts.onState("live");
    failures = 0;
    const parser = new SseParser();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const message of parser.feed(value)) {
        const id = Number(message.id);
        if (!Number.isInteger(id) || id <= lastId) continue;
        lastId = id;
        opts.onEvent(JSON.parse(message.data) as ApiEvent);
      }
      if (parser.retryMs !== undefined) retryMs = parser.retryMs;
    }
  };

  void (async () => {
    opts.onState("connecting");
    while (!abort.signal.aborted) {
      try {
        await connect();
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
          if (err.status === 401) reportUnauthorized(err);
          opts.onState("stopped", err.message);
          return;
        }
      }
      if (abort.signal.aborted) return;
      failures++;
      opts.onState("reconnecting");
      await sleep(Math.min(retryMs * failures, MAX_WAIT_MS), abort.signal);
    }
  })();
  return () => abort.abort();
}
